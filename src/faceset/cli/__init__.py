"""The command line: parse, call the library, print. Errors become one line, in one place.

Each module here holds the commands of one stage; importing it registers them on ``app``.
"""

from __future__ import annotations

import functools
import logging
import re
import signal
from collections.abc import Callable
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.logging import RichHandler
from typer.core import TyperCommand, TyperGroup, TyperOption

from faceset import __version__
from faceset.errors import FacesetError
from faceset.redaction import RedactingFilter, redact_text

# The option panels of long commands (export has over 40 options), by parameter name.
PANELS = {
    "Selection": ("person", "best", "since", "years", "confirmed_only", "include_archived",
                  "face_model", "explain"),
    "Framing": ("size", "face_ratio", "tight", "pad", "upscale", "allow_changed", "allow_damaged"),
    "Trainer layouts": ("layout", "for_model", "trigger", "class_word", "repeats",
                        "caption_template", "masks", "mask_floor"),
    "Training and headshots": ("base", "family", "steps", "vram", "save_every", "resolution",
                               "preset", "count", "keep", "no_eval", "resume"),
    "Library": ("source", "db", "originals", "storage", "sidecar", "db_password_file", "url",
                "token_file", "ca_file", "cache", "server_path", "env_file", "config_file"),
    "Output": ("out", "workers", "json_lines", "verbose", "quiet", "help"),
}  # fmt: skip
_PANEL_OF = {name: panel for panel, names in PANELS.items() for name in names}
_PANELLED = ("export", "select", "run")


def _readable(params: list[Any], panels: bool) -> None:
    """Make Typer's Rich help say what the code says: literal brackets (Rich would read
    ``[default: 30]`` as markup and drop it), flags without a ``<bool>`` value, and panels."""
    for param in params:
        if isinstance(param, TyperOption):
            if param.help:
                param.help = re.sub(r"(?<!\\)\[", r"\\[", param.help)
            if param.is_flag:
                param.metavar = ""  # a flag takes no value; Typer would show <bool>
            if panels and param.name in _PANEL_OF:
                param.rich_help_panel = _PANEL_OF[param.name]


class Command(TyperCommand):
    """A command whose help shows every default, flags as flags, and long option lists in panels."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        panelled = self.name in _PANELLED
        _readable(self.get_params(ctx), panelled)
        declared = self.params
        if panelled:  # panels in PANELS order; parsing keeps the declared order
            order = list(PANELS)
            self.params = sorted(
                declared, key=lambda p: order.index(_PANEL_OF.get(p.name or "", "Output"))
            )
        try:
            super().format_help(ctx, formatter)
        finally:
            self.params = declared

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        """Return the usage line's pieces, a required argument as ``NAME`` (Typer writes
        ``{NAME}``, which reads as a literal brace or a set), an optional one as ``[NAME]``."""
        return [
            re.sub(r"^\{(.+)\}(\.\.\.)?$", r"\1\2", p) for p in super().collect_usage_pieces(ctx)
        ]


class Group(TyperGroup):
    def format_help(self, ctx: Any, formatter: Any) -> None:
        _readable(self.get_params(ctx), False)
        super().format_help(ctx, formatter)


app = typer.Typer(
    cls=Group,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # keeps database passwords out of tracebacks
    add_completion=False,
    help="The faces your photo library already named, as a training set of one person.",
    epilog=(
        "Examples:\n\n"
        "faceset demo  (a sample library, exported, with report.html to open)\n\n"
        "faceset people --db sqlite:///photoprism/storage/index.db\n\n"
        "faceset export --db sqlite:///photoprism/storage/index.db --originals photoprism/originals"
        ' --person "Jane Doe" --best 30 --out jane\n\n'
        "faceset train jane --base stable-diffusion-v1-5/stable-diffusion-v1-5 --for sd15\n\n"
        "Each command's --help lists its options and an example."
    ),
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

    app.command(cls=Command)(run)
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
