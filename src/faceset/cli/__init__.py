"""The command line: parse, call the library, print. Errors become one line, in one place.

Each module here holds the commands of one stage; importing it registers them on ``app``.
"""

from __future__ import annotations

import functools
import logging
import signal
from collections.abc import Callable
from typing import Annotated, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.logging import RichHandler

from faceset import __version__
from faceset.errors import FacesetError
from faceset.redaction import RedactingFilter, redact_text

app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # keeps database passwords out of tracebacks
    add_completion=False,
    help="The faces your photo library already named, as a training set of one person.",
)
out_console = Console()
err_console = Console(stderr=True)
P = ParamSpec("P")
T = TypeVar("T")

Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Show debug messages.")]
Quiet = Annotated[
    bool, typer.Option("--quiet", "-q", help="Only warnings and errors; no progress bar.")
]
JsonLines = Annotated[bool, typer.Option("--json", help="Print JSON lines on stdout for scripts.")]


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during a command; the message says what was done by then."""


def command(fn: Callable[P, T]) -> Callable[P, T]:
    """Register a command whose FacesetError becomes one line on stderr and exit status 1, and
    whose interruption (Ctrl-C, SIGTERM) one line and exit status 130."""

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt as e:
            done = f": {e}" if isinstance(e, Interrupted) and str(e) else ""
            err_console.print(
                f"interrupted{done}; run the same command to resume",
                markup=False, highlight=False, soft_wrap=True,
            )  # fmt: skip
            raise typer.Exit(130) from None
        except FacesetError as e:
            err_console.print(
                f"error: {redact_text(str(e))}", markup=False, highlight=False, soft_wrap=True
            )
            raise typer.Exit(1) from e

    app.command()(run)
    return run


def setup_logging(verbose: bool, quiet: bool) -> None:
    """Send log records to stderr through Rich: -v for debug, -q for warnings only."""
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = RichHandler(console=err_console, show_time=False, show_path=False, markup=False)
    handler.addFilter(RedactingFilter())  # no password or token reaches a terminal or a log file
    logging.basicConfig(level=level, handlers=[handler], format="%(message)s", force=True)


def _version(value: bool) -> None:
    if value:
        print(__version__)
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """The faces your photo library already named, as a training set of one person."""


def main() -> None:
    # SIGTERM (systemd, docker stop, kill) stops a run as cleanly as Ctrl-C: finished images
    # stay, the journal is kept, workers and their server exit with it.
    signal.signal(signal.SIGTERM, _terminate)
    app(prog_name="faceset")


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


# Registration happens on import; these come last because they use ``command`` above.
from faceset.cli import doctor, generate, library, models, train  # noqa: E402, F401
