"""The models command: which base models are on this disk, what they are, and whether faceset
trains on them. Reads file headers only: no torch, nothing fetched."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from faceset.cli import Quiet, Verbose, command, out_console, setup_logging


def _size(n: int) -> str:
    """Return ``n`` bytes for people: ``7.8 GB``."""
    size = float(n)
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


@command
def models(
    comfyui: Annotated[
        list[Path] | None,
        typer.Option(
            "--comfyui",
            help="A ComfyUI folder (or its models/); repeat for more.",
            show_default=False,
        ),
    ] = None,
    a1111: Annotated[
        list[Path] | None,
        typer.Option(
            "--a1111",
            help="An A1111/Forge folder (or its models/); repeat for more.",
            show_default=False,
        ),
    ] = None,
    hf_cache: Annotated[
        Path | None,
        typer.Option(
            "--hf-cache",
            help="Hugging Face hub cache (default: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub).",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON lines on stdout for scripts.")
    ] = False,
    verbose: Verbose = False,
    quiet: Quiet = False,
) -> None:
    """List the base models on this disk: family, size, licence, and whether faceset trains on it.

    Example: faceset models --comfyui ~/ComfyUI
    """
    setup_logging(verbose, quiet)
    from faceset.train import model_files

    found = model_files.find_models(hf_cache, comfyui or (), a1111 or ())
    if as_json:
        for m in found:
            row = {
                "base": m.base, "path": str(m.path), "source": m.source, "family": m.family,
                "what": m.label, "size_bytes": m.size_bytes, "licence": m.licence,
                "trainable": m.trainable, "reason": m.reason,
            }  # fmt: skip
            print(json.dumps(row))
        return
    table = Table(box=None)
    for name in ("base", "family", "what", "size", "licence", "trains"):
        table.add_column(name, overflow="fold")
    for m in found:
        cells = (
            m.base, m.family or "-", m.label, _size(m.size_bytes), m.licence or "-",
            "yes" if m.trainable else f"no: {m.reason}",
        )  # fmt: skip
        table.add_row(*(Text(c) for c in cells))  # Text: "[klein]" is not Rich markup
    out_console.print(table)
