"""Commands that read a library: people, export, demo."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from faceset import config, pipeline
from faceset.cli import JsonLines, Quiet, Verbose, command, err_console, out_console, setup_logging
from faceset.model import Outcome, Status

# Options shared by the commands that read a library.
Db = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Index URL: sqlite:///…/index.db or mysql+pymysql://user@host/photoprism.",
        show_default=False,
    ),
]
Originals = Annotated[
    Path | None,
    typer.Option("--originals", help="PhotoPrism's originals folder.", show_default=False),
]
Storage = Annotated[
    Path | None,
    typer.Option(
        "--storage",
        help="PhotoPrism's storage folder (sidecar JPEGs, index.db).",
        show_default=False,
    ),
]
Sidecar = Annotated[
    Path | None,
    typer.Option("--sidecar", help="Sidecar folder, if not <storage>/sidecar.", show_default=False),
]
PasswordFile = Annotated[
    Path | None,
    typer.Option(
        "--db-password-file", help="File holding the database password.", show_default=False
    ),
]
EnvFile = Annotated[
    Path | None,
    typer.Option(
        "--env-file",
        help="PhotoPrism .env file to read PHOTOPRISM_* settings from.",
        show_default=False,
    ),
]
ConfigFile = Annotated[
    Path | None,
    typer.Option(
        "--config", help="Settings file (default ./faceset.toml if present).", show_default=False
    ),
]


def _load(
    config_file: Path | None, env_file: Path | None, sections: dict[str, dict[str, Any]]
) -> config.Config:
    environ: dict[str, str] = dict(os.environ)
    if env_file is not None:
        environ = {**config.read_env_file(env_file), **environ}
    return config.load(config_file, sections, environ)


def _library(
    db: str | None,
    originals: Path | None,
    storage: Path | None,
    sidecar: Path | None,
    password_file: Path | None,
) -> dict[str, Any]:
    return {
        "db": db,
        "originals": originals,
        "storage": storage,
        "sidecar": sidecar,
        "db_password_file": password_file,
    }


@command
def people(
    db: Db = None,
    originals: Originals = None,
    storage: Storage = None,
    sidecar: Sidecar = None,
    db_password_file: PasswordFile = None,
    env_file: EnvFile = None,
    config_file: ConfigFile = None,
    json_lines: JsonLines = False,
    verbose: Verbose = False,
    quiet: Quiet = False,
) -> None:
    """List the people in the library with their name, alias, UID and usable faces.

    Example: faceset people --db sqlite:///photoprism/storage/index.db
    """
    setup_logging(verbose, quiet)
    cfg = _load(
        config_file,
        env_file,
        {"library": _library(db, originals, storage, sidecar, db_password_file)},
    )
    found = pipeline.list_people(cfg)
    if json_lines:
        for p in found:
            print(
                json.dumps(
                    {
                        "uid": p.uid,
                        "name": p.name,
                        "alias": p.alias,
                        "slug": p.slug,
                        "faces": p.faces,
                        "confirmed": p.confirmed,
                    },
                    ensure_ascii=False,
                )
            )
        return
    table = Table("Name", "Alias", "UID", "Faces", "Confirmed", "")
    for p in found:
        flags = ", ".join(
            f
            for f, on in (("hidden", p.hidden), ("private", p.private), ("excluded", p.excluded))
            if on
        )
        table.add_row(p.name, p.alias, p.uid, str(p.faces), str(p.confirmed), flags)
    out_console.print(table)


@command
def export(
    person: Annotated[
        str, typer.Option("--person", "-p", help="Name, alias, slug or UID of the person.")
    ],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output folder.", show_default=False)
    ] = None,
    size: Annotated[
        int | None, typer.Option(help="Output side in pixels [default: 512].", show_default=False)
    ] = None,
    face_ratio: Annotated[
        float | None,
        typer.Option(
            help="Face side / output side; 0.35-0.45 is head and shoulders [default: 0.4].",
            show_default=False,
        ),
    ] = None,
    tight: Annotated[
        bool | None, typer.Option("--tight", help="The face box alone.", show_default=False)
    ] = None,
    pad: Annotated[
        bool | None,
        typer.Option(
            "--pad",
            help="Pad at photo edges instead of tightening the framing.",
            show_default=False,
        ),
    ] = None,
    upscale: Annotated[
        bool | None,
        typer.Option(
            "--upscale",
            help="Enlarge faces too small for --size instead of skipping them.",
            show_default=False,
        ),
    ] = None,
    confirmed_only: Annotated[
        bool | None,
        typer.Option(
            "--confirmed-only",
            help="Only faces the user named, not automatic matches.",
            show_default=False,
        ),
    ] = None,
    include_archived: Annotated[
        bool | None,
        typer.Option(
            "--include-archived", help="Also faces on archived photos.", show_default=False
        ),
    ] = None,
    allow_changed: Annotated[
        bool | None,
        typer.Option(
            "--allow-changed", help="Crop files changed since indexing.", show_default=False
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Parallel processes [default: one per core].", show_default=False),
    ] = None,
    db: Db = None,
    originals: Originals = None,
    storage: Storage = None,
    sidecar: Sidecar = None,
    db_password_file: PasswordFile = None,
    env_file: EnvFile = None,
    config_file: ConfigFile = None,
    json_lines: JsonLines = False,
    verbose: Verbose = False,
    quiet: Quiet = False,
) -> None:
    """Crop every usable face of one person into --out, with manifest.jsonl and report.json.

    Example: faceset export --db sqlite:///storage/index.db --originals originals --person "Jane Doe" --out jane
    """
    setup_logging(verbose, quiet)
    sections = {
        "library": _library(db, originals, storage, sidecar, db_password_file),
        "select": {"confirmed_only": confirmed_only, "include_archived": include_archived},
        "crop": {
            "size": size,
            "face_ratio": face_ratio,
            "tight": tight,
            "pad": pad,
            "upscale": upscale,
            "allow_changed": allow_changed,
        },
        "export": {"out": out, "workers": workers},
    }
    cfg = _load(config_file, env_file, sections)
    run_export(cfg, person, json_lines=json_lines, quiet=quiet)


def run_export(
    cfg: config.Config, person: str, *, json_lines: bool = False, quiet: bool = False
) -> pipeline.ExportResult:
    """Run an export with progress on stderr and the result on stdout."""
    with _progress(enabled=not quiet and not json_lines) as (on_start, advance):

        def on_outcome(outcome: Outcome) -> None:
            advance(outcome)
            if json_lines:
                print(json.dumps(_outcome_json(outcome), ensure_ascii=False), flush=True)

        result = pipeline.export(cfg, person, on_start=on_start, on_outcome=on_outcome)
    s = result.summary
    if json_lines:
        print(
            json.dumps(
                {
                    "event": "summary",
                    "out": str(result.out),
                    "found": s.found,
                    "written": s.written,
                    "kept": s.kept,
                    "removed": s.removed,
                    "skipped": s.skipped,
                    "failed": s.failed,
                }
            )
        )
    elif not quiet:
        problems = {**s.skipped, **s.failed}
        detail = ", ".join(
            f"{n} {reason.replace('_', ' ')}" for reason, n in sorted(problems.items())
        )
        out_console.print(
            f"{result.person.name}: {s.found} faces -> {s.images} images in {result.out}"
            f" ({s.written} new, {s.kept} kept"
            + (f", {s.removed} removed" if s.removed else "")
            + ")"
            + (f"; not exported: {detail} (see {result.report})" if detail else ""),
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    return result


def _outcome_json(outcome: Outcome) -> dict[str, Any]:
    return {
        "event": "face",
        "marker_uid": outcome.face.marker_uid,
        "status": outcome.status.value,
        "image": outcome.image or None,
        "reason": outcome.reason.value if outcome.reason else None,
        "detail": outcome.detail or None,
    }


@contextmanager
def _progress(enabled: bool) -> Iterator[tuple[Callable[[int], None], Callable[[Outcome], None]]]:
    if not enabled or not err_console.is_terminal:
        yield (lambda _total: None), (lambda _outcome: None)
        return
    columns = (
        TextColumn("cropping"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[counts]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err_console, transient=False) as bar:
        task = bar.add_task("crop", total=None, counts="")
        tally = {"new": 0, "kept": 0, "skipped": 0, "failed": 0}
        names = {
            Status.WRITTEN: "new",
            Status.KEPT: "kept",
            Status.SKIPPED: "skipped",
            Status.FAILED: "failed",
        }

        def advance(outcome: Outcome) -> None:
            tally[names[outcome.status]] += 1
            bar.update(task, advance=1, counts=" ".join(f"{v} {k}" for k, v in tally.items() if v))

        yield (lambda total: bar.update(task, total=total)), advance


@command
def demo(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for the sample library and its export.")
    ] = Path("faceset-demo"),
    verbose: Verbose = False,
    quiet: Quiet = False,
) -> None:
    """Build the built-in sample library and export one person from it, end to end.

    Example: faceset demo --out /tmp/faceset-demo
    """
    setup_logging(verbose, quiet)
    from faceset.demo import build_library

    library = build_library(out / "library")
    cfg = config.load(
        None,
        {
            "library": {
                "db": library.db_url,
                "originals": library.originals,
                "storage": library.storage,
            },
            "export": {"out": out / "export"},
        },
        environ={},
    )
    if not quiet:
        out_console.print(
            f"sample library: {library.root} (PhotoPrism SQLite index {library.index})",
            highlight=False,
        )
        table = Table("Name", "Alias", "UID", "Faces")
        for p in pipeline.list_people(cfg):
            table.add_row(p.name, p.alias, p.uid, str(p.faces))
        out_console.print(table)
    result = run_export(cfg, library.person, quiet=quiet)
    if not quiet:
        out_console.print(
            f"images: {result.out / 'faces'}\nmanifest: {result.out / 'manifest.jsonl'}\nreport: {result.report}",
            highlight=False,
        )
