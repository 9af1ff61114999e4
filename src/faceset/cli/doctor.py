"""``faceset doctor``: the versions a bug report needs, and whether the stack fits faceset."""

from __future__ import annotations

import typer

from faceset.cli import command, err_console, out_console


@command
def doctor() -> None:
    """Print the versions of everything faceset runs on (paste them into a bug report) and
    check the training stack against faceset's requirements; exit 1 when it does not fit.

    Example: faceset doctor
    """
    from faceset import environment

    rows = environment.report()
    width = max(len(name) for name, _ in rows)
    for name, version in rows:
        out_console.print(f"{name:<{width}}  {version}", markup=False, highlight=False)
    found = environment.problems("train", environment.TRAIN_STACK)
    if not found:
        out_console.print("training stack: ok", markup=False, highlight=False)
        return
    try:
        environment.require("faceset train, headshots, eval and run")
    except environment.StackMismatch as e:
        err_console.print(f"problem: {e}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(1)
