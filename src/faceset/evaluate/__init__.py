"""faceset eval: does the LoRA look like the person? Scored against photos it never saw.

Each checkpoint draws a fixed set of prompts and seeds; the local face model (faceset[identity])
embeds every output and the person's real photos, training and held out; SimTarget, SimRef,
Paste, diversity and faces not found pick the checkpoint (../shared/reference/quality.md
section 3). Importing this package is cheap: torch loads only when images are drawn.

Example::

    from faceset.evaluate import EvalConfig, evaluate

    result = evaluate(Path("jane"), Path("jane/model"), EvalConfig())
    print(result.best, result.reason, result.html)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from faceset.evaluate.candidates import Candidate, ModelFolderError, find_candidates
    from faceset.evaluate.config import EvalConfig
    from faceset.evaluate.encoder import FaceModelMissing, require
    from faceset.evaluate.evaluation import EvalResult, OnProgress, Progress, Renderer, evaluate
    from faceset.evaluate.photos import ExportFolderError, RealPhotos, read_export

# Names load with their module on first use: the CLI imports this package for its settings, and
# a command that draws or scores nothing should not pay for the rest.
_HOMES = {
    "Candidate": "faceset.evaluate.candidates",
    "ModelFolderError": "faceset.evaluate.candidates",
    "find_candidates": "faceset.evaluate.candidates",
    "EvalConfig": "faceset.evaluate.config",
    "FaceModelMissing": "faceset.evaluate.encoder",
    "require": "faceset.evaluate.encoder",
    "EvalResult": "faceset.evaluate.evaluation",
    "OnProgress": "faceset.evaluate.evaluation",
    "Progress": "faceset.evaluate.evaluation",
    "Renderer": "faceset.evaluate.evaluation",
    "evaluate": "faceset.evaluate.evaluation",
    "ExportFolderError": "faceset.evaluate.photos",
    "RealPhotos": "faceset.evaluate.photos",
    "read_export": "faceset.evaluate.photos",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)


__all__ = [
    "Candidate",
    "EvalConfig",
    "EvalResult",
    "ExportFolderError",
    "FaceModelMissing",
    "ModelFolderError",
    "OnProgress",
    "Progress",
    "RealPhotos",
    "Renderer",
    "evaluate",
    "find_candidates",
    "read_export",
    "require",
]
