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

from faceset.evaluate.candidates import Candidate, ModelFolderError, find_candidates
from faceset.evaluate.config import EvalConfig
from faceset.evaluate.encoder import FaceModelMissing, require
from faceset.evaluate.evaluation import EvalResult, OnProgress, Progress, Renderer, evaluate
from faceset.evaluate.photos import ExportFolderError, RealPhotos, read_export

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
