"""Commands that read a library: people, export, demo."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from faceset import config, pipeline
from faceset.cli import (
    Interrupted,
    JsonLines,
    Quiet,
    Verbose,
    command,
    err_console,
    out_console,
    setup_logging,
)
from faceset.errors import ConfigError
from faceset.model import Outcome, Status

# Options shared by the commands that read a library.
Db = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Library database URL: PhotoPrism sqlite:///…/index.db or mysql+pymysql://user@host/photoprism; immich-db postgresql://…; digikam sqlite:///…/digikam4.db.",
        show_default=False,
    ),
]
Originals = Annotated[
    Path | None,
    typer.Option(
        "--originals",
        help="Originals folder (PhotoPrism's, Immich's upload folder, digiKam's album root, or the photo folder for xmp).",
        show_default=False,
    ),
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


SourceKind = Annotated[
    str | None,
    typer.Option(
        "--source",
        help="Library kind: photoprism (its database, the default), photoprism-api, immich, immich-db, digikam, xmp (face regions in the files).",
        show_default=False,
    ),
]
Url = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="Server address for photoprism-api or immich, e.g. http://192.168.1.5:2342.",
        show_default=False,
    ),
]
TokenFile = Annotated[
    Path | None,
    typer.Option(
        "--token-file",
        help="File holding the PhotoPrism app password/access token or Immich API key (or set FACESET_PHOTOPRISM_TOKEN / IMMICH_API_KEY).",
        show_default=False,
    ),
]
CaFile = Annotated[
    Path | None,
    typer.Option(
        "--ca-file",
        help="CA certificate (PEM) of an HTTPS server with a private certificate.",
        show_default=False,
    ),
]
Cache = Annotated[
    Path | None,
    typer.Option(
        "--cache",
        help="Folder for downloaded originals, reused between runs [default: ~/.cache/faceset].",
        show_default=False,
    ),
]
ServerPath = Annotated[
    str | None,
    typer.Option(
        "--server-path",
        help="What --originals is called in the library's own paths (immich-db: /data or /usr/src/app/upload; digikam: the album root).",
        show_default=False,
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
    remote: dict[str, Any],
) -> dict[str, Any]:
    return {
        "db": db,
        "originals": originals,
        "storage": storage,
        "sidecar": sidecar,
        "db_password_file": password_file,
        **remote,
    }


def _remote(
    source: str | None,
    url: str | None,
    token_file: Path | None,
    ca_file: Path | None,
    cache: Path | None,
    server_path: str | None,
) -> dict[str, Any]:
    return {"source": source, "url": url, "token_file": token_file, "ca_file": ca_file,
            "cache": cache, "server_path": server_path}  # fmt: skip


@command
def people(
    db: Db = None,
    originals: Originals = None,
    storage: Storage = None,
    sidecar: Sidecar = None,
    db_password_file: PasswordFile = None,
    source: SourceKind = None,
    url: Url = None,
    token_file: TokenFile = None,
    ca_file: CaFile = None,
    cache: Cache = None,
    server_path: ServerPath = None,
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
        {
            "library": _library(
                db,
                originals,
                storage,
                sidecar,
                db_password_file,
                _remote(source, url, token_file, ca_file, cache, server_path),
            )
        },
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
    if not found:
        err_console.print(
            "the library has no named people: name faces in it first, then run faceset people",
            markup=False, highlight=False, soft_wrap=True,
        )  # fmt: skip
        return
    notes = {
        p.uid: ", ".join(
            f
            for f, on in (("hidden", p.hidden), ("private", p.private), ("excluded", p.excluded))
            if on
        )
        for p in found
    }
    # A notes column only when someone has a note: an empty last column reads as missing data.
    columns = ["Name", "Alias", "UID", "Faces", "Confirmed"] + (["Notes"] * any(notes.values()))
    table = Table(*columns)
    for p in found:
        row = [p.name, p.alias, p.uid, str(p.faces), str(p.confirmed)]
        table.add_row(*row, *([notes[p.uid]] if len(columns) > len(row) else []))
    out_console.print(table)


# Options of the commands that choose faces.
Person = Annotated[
    str | None,
    typer.Option(
        "--person",
        "-p",
        help="Name, alias, slug or UID of the person [default: the [person] of --config].",
        show_default=False,
    ),
]
ConfirmedOnly = Annotated[
    bool | None,
    typer.Option(
        "--confirmed-only",
        help="Only faces the user named, not automatic matches.",
        show_default=False,
    ),
]
IncludeArchived = Annotated[
    bool | None,
    typer.Option("--include-archived", help="Also faces on archived photos.", show_default=False),
]
Since = Annotated[
    datetime | None,
    typer.Option(
        "--since",
        formats=["%Y-%m-%d"],
        help="Leave out photos taken before this date.",
        show_default=False,
    ),
]
Years = Annotated[
    float | None,
    typer.Option(
        "--years", help="Leave out photos older than this many years.", show_default=False
    ),
]
FaceModel = Annotated[
    str | None,
    typer.Option(
        "--face-model",
        help="Local face detector/embedding for faces without one: auto, on, off [default: auto].",
        show_default=False,
    ),
]
Workers = Annotated[
    int | None, typer.Option(help="Parallel processes [default: one per core].", show_default=False)
]


def _select_section(
    confirmed_only: bool | None,
    include_archived: bool | None,
    since: datetime | None,
    years: float | None,
    best: int | None,
    face_model: str | None,
) -> dict[str, Any]:
    return {
        "face_model": face_model,
        "confirmed_only": confirmed_only,
        "include_archived": include_archived,
        "since": since.date() if since else None,
        "years": years,
        "best": best,
    }


@command
def select(
    person: Person = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Folder for report.html, contact_sheet.png and selection.jsonl.",
            show_default=False,
        ),
    ] = None,
    best: Annotated[int, typer.Option("--best", "-n", help="How many faces to choose.")] = 30,
    explain: Annotated[
        bool,
        typer.Option(
            "--explain", help="Print every face with the reason it was or was not chosen."
        ),
    ] = False,
    since: Since = None,
    years: Years = None,
    confirmed_only: ConfirmedOnly = None,
    include_archived: IncludeArchived = None,
    size: Annotated[
        int | None,
        typer.Option(help="Training size the faces must reach [default: 512].", show_default=False),
    ] = None,
    face_model: FaceModel = None,
    workers: Workers = None,
    db: Db = None,
    originals: Originals = None,
    storage: Storage = None,
    sidecar: Sidecar = None,
    db_password_file: PasswordFile = None,
    source: SourceKind = None,
    url: Url = None,
    token_file: TokenFile = None,
    ca_file: CaFile = None,
    cache: Cache = None,
    server_path: ServerPath = None,
    env_file: EnvFile = None,
    config_file: ConfigFile = None,
    json_lines: JsonLines = False,
    verbose: Verbose = False,
    quiet: Quiet = False,
) -> None:
    """Choose the person's best training faces and say why each other face was left out.

    Example: faceset select --db sqlite:///storage/index.db --originals originals --person "Jane Doe" --best 30 --explain --out jane-report
    """
    setup_logging(verbose, quiet)
    sections = {
        "library": _library(
            db,
            originals,
            storage,
            sidecar,
            db_password_file,
            _remote(source, url, token_file, ca_file, cache, server_path),
        ),
        "select": _select_section(confirmed_only, include_archived, since, years, best, face_model),
        "crop": {"size": size},
        "export": {"out": out, "workers": workers},
    }
    cfg = _load(config_file, env_file, sections)
    with _progress(enabled=not quiet and not json_lines) as (on_start, advance):
        result = pipeline.select(cfg, person, on_start=on_start, on_step=lambda _: advance(None))
    decisions = result.selection.decisions
    if json_lines:
        for d in decisions:
            print(json.dumps(pipeline.decision_record(d), ensure_ascii=False))
        return
    if explain:
        threshold = result.selection.threshold
        table = Table(
            "", "Date", "File", "Reason", "Score", "Identity distance",
            caption="Identity distance: how far the face is from the person's other faces"
            + (f"; above {threshold:.2f} it is taken for someone else" if threshold else ""),
        )  # fmt: skip
        for d in decisions:
            table.add_row(
                "✓" if d.chosen else "✗",
                f"{d.face.taken_at:%Y-%m-%d}" if d.face.taken_at else "",
                d.face.file_name,
                d.detail or d.reason or "chosen",
                f"{d.score:.2f}" if d.score else "",
                f"{d.distance:.2f}" if d.distance is not None else "",
            )
        out_console.print(table)
    if not quiet:
        counts = result.selection.counts()
        chosen = counts.pop("chosen", 0)
        left = ", ".join(f"{n} {r.replace('_', ' ')}" for r, n in sorted(counts.items()))
        out_console.print(
            f"{result.person.name}: {faces(len(decisions))} -> {chosen} chosen" + (f"; left out: {left}" if left else ""),
            highlight=False, markup=False, soft_wrap=True,
        )  # fmt: skip
        for name, path in result.files.items():
            out_console.print(f"{name}: {path}", highlight=False, markup=False, soft_wrap=True)


@command
def export(
    person: Person = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output folder.", show_default=False)
    ] = None,
    best: Annotated[
        int | None,
        typer.Option(
            "--best",
            "-n",
            help="Only the best N faces (identity, quality, variety, recency), with report.html.",
            show_default=False,
        ),
    ] = None,
    since: Since = None,
    years: Years = None,
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
    confirmed_only: ConfirmedOnly = None,
    include_archived: IncludeArchived = None,
    allow_changed: Annotated[
        bool | None,
        typer.Option(
            "--allow-changed", help="Crop files changed since indexing.", show_default=False
        ),
    ] = None,
    allow_damaged: Annotated[
        bool | None,
        typer.Option(
            "--allow-damaged",
            help="Crop JPEGs libjpeg reports corrupt (the manifest warns) instead of skipping them.",
            show_default=False,
        ),
    ] = None,
    face_model: FaceModel = None,
    layout: Annotated[
        str | None,
        typer.Option(
            "--layout",
            help="Trainer folders to write: kohya (also bmaltais, ai-toolkit, OneTrainer), diffusers, all, none [default: all].",
            show_default=False,
        ),
    ] = None,
    for_model: Annotated[
        str | None,
        typer.Option(
            "--for",
            help="Model the set is for: sd15 (512 px), sdxl, flux2-klein, zimage, zimage-turbo, qwen-image or flux1 (1024 px); sets --size and layout defaults.",
            show_default=False,
        ),
    ] = None,
    trigger: Annotated[
        str | None,
        typer.Option(
            "--trigger",
            help="Rare token naming the person, first in every caption [default: ohwx].",
            show_default=False,
        ),
    ] = None,
    class_word: Annotated[
        str | None,
        typer.Option(
            "--class",
            help="Class word after the trigger: person, man, woman [default: person].",
            show_default=False,
        ),
    ] = None,
    repeats: Annotated[
        int | None,
        typer.Option(
            "--repeats",
            help="kohya repeats per epoch [default: about 300 image views per epoch].",
            show_default=False,
        ),
    ] = None,
    caption_template: Annotated[
        str | None,
        typer.Option(
            "--caption-template",
            help="Caption with {trigger} first, then {class}, {era}, {year}, {setting}, {glasses}.",
            show_default=False,
        ),
    ] = None,
    masks: Annotated[
        bool | None,
        typer.Option(
            "--masks/--no-masks",
            help="Write loss masks (face and head white, floor elsewhere, other faces black) [default: on].",
            show_default=False,
        ),
    ] = None,
    mask_floor: Annotated[
        float | None,
        typer.Option(
            "--mask-floor",
            help="Loss weight outside the head and shoulders, 0-1 [default: 0.2].",
            show_default=False,
        ),
    ] = None,
    workers: Workers = None,
    db: Db = None,
    originals: Originals = None,
    storage: Storage = None,
    sidecar: Sidecar = None,
    db_password_file: PasswordFile = None,
    source: SourceKind = None,
    url: Url = None,
    token_file: TokenFile = None,
    ca_file: CaFile = None,
    cache: Cache = None,
    server_path: ServerPath = None,
    env_file: EnvFile = None,
    config_file: ConfigFile = None,
    json_lines: JsonLines = False,
    verbose: Verbose = False,
    quiet: Quiet = False,
) -> None:
    """Crop the person's faces into --out (all, or the --best N), with manifest.jsonl and report.json.

    Example: faceset export --db sqlite:///storage/index.db --originals originals --person "Jane Doe" --best 30 --out jane
    """
    setup_logging(verbose, quiet)
    sections = {
        "library": _library(db, originals, storage, sidecar, db_password_file, _remote(source, url, token_file, ca_file, cache, server_path)),
        "select": _select_section(confirmed_only, include_archived, since, years, best, face_model),
        "crop": {
            "size": size,
            "face_ratio": face_ratio,
            "tight": tight,
            "pad": pad,
            "upscale": upscale,
            "allow_changed": allow_changed,
            "allow_damaged": allow_damaged,
        },
        "export": {
            "out": out, "workers": workers, "layout": layout, "for_model": for_model, "trigger": trigger,
            "class_word": class_word, "repeats": repeats, "caption_template": caption_template,
            "masks": masks, "mask_floor": mask_floor,
        },
    }  # fmt: skip
    cfg = _load(config_file, env_file, sections)
    run_export(cfg, person, json_lines=json_lines, quiet=quiet)


def run_export(
    cfg: config.Config, person: str | None, *, json_lines: bool = False, quiet: bool = False
) -> pipeline.ExportResult:
    """Run an export with progress on stderr and the result on stdout."""
    written = 0
    with _progress(enabled=not quiet and not json_lines) as (on_start, advance):

        def on_outcome(outcome: Outcome) -> None:
            nonlocal written
            written += outcome.status is Status.WRITTEN
            advance(outcome)
            if json_lines:
                print(json.dumps(_outcome_json(outcome), ensure_ascii=False), flush=True)

        try:
            result = pipeline.export(
                cfg, person, on_start=on_start, on_outcome=on_outcome,
                on_step=lambda _: advance(None),
            )  # fmt: skip
        except KeyboardInterrupt:
            raise Interrupted(f"{written} images written") from None
    s = result.summary
    if json_lines:
        summary = {"event": "summary", "out": str(result.out), "found": s.found, "written": s.written,
                   "kept": s.kept, "removed": s.removed, "skipped": s.skipped, "failed": s.failed}  # fmt: skip
        if result.selection is not None:
            summary["selection"] = result.selection.counts()
        print(json.dumps(summary))
    elif not quiet:
        problems = {**s.skipped, **s.failed}
        detail = ", ".join(
            f"{n} {reason.replace('_', ' ')}" for reason, n in sorted(problems.items())
        )
        chosen = ""
        if result.selection is not None:
            chosen = f" ({len(result.selection.chosen)} chosen of {len(result.selection.decisions)}; see {result.out / 'report.html'})"
        out_console.print(
            f"{result.person.name}: {faces(s.found)}{chosen} -> {plural(s.images, 'image')} in {result.out}"
            f" ({s.written} new, {s.kept} kept"
            + (f", {s.removed} removed" if s.removed else "")
            + ")"
            + (f"; not exported: {detail} (see {result.report})" if detail else ""),
            highlight=False, markup=False, soft_wrap=True,
        )  # fmt: skip
        if result.layouts is not None and result.layouts.guide is not None:
            out_console.print(
                f"training folders: {result.layouts.train_data_dir} (kohya --train_data_dir),"
                f" {result.layouts.diffusers_train_dir} (diffusers); how to train: {result.layouts.guide}",
                highlight=False, markup=False, soft_wrap=True,
            )  # fmt: skip
    return result


def plural(n: int, word: str) -> str:
    """Return "1 face", "2 faces": a count with its noun."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def faces(n: int) -> str:
    return plural(n, "face")


def _outcome_json(outcome: Outcome) -> dict[str, Any]:
    return {
        "event": "face", "marker_uid": outcome.face.marker_uid, "status": outcome.status.value,
        "image": outcome.image or None, "reason": outcome.reason.value if outcome.reason else None,
        "detail": outcome.detail or None,
    }  # fmt: skip


@contextmanager
def _progress(
    enabled: bool,
) -> Iterator[tuple[Callable[[int, str], None], Callable[[Outcome | None], None]]]:
    """Yield (start a phase, advance it) callbacks that drive a Rich progress bar on stderr, or,
    when stderr is no terminal (a pipe, cron, systemd), a plain line every PROGRESS_EVERY_S."""
    if not enabled:
        yield (lambda _total, _phase: None), (lambda _outcome: None)
        return
    if not err_console.is_terminal:
        lines = _ProgressLines()
        yield lines.start, lines.advance
        return
    columns = (
        TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[counts]}"), TimeRemainingColumn(),
    )  # fmt: skip
    names = {
        Status.WRITTEN: "new",
        Status.KEPT: "kept",
        Status.SKIPPED: "skipped",
        Status.FAILED: "failed",
    }
    with Progress(*columns, console=err_console, transient=False) as bar:
        task = bar.add_task("reading", total=None, counts="")
        tally: dict[str, int] = {}

        def start(total: int, phase: str) -> None:
            nonlocal task
            bar.update(task, visible=bar.tasks[task].completed > 0)
            if bar.tasks[task].completed == 0:
                bar.remove_task(task)
            tally.clear()
            task = bar.add_task(phase, total=total, counts="")

        def advance(outcome: Outcome | None) -> None:
            if outcome is not None:
                key = names[outcome.status]
                tally[key] = tally.get(key, 0) + 1
            bar.update(task, advance=1, counts=" ".join(f"{v} {k}" for k, v in tally.items()))

        yield start, advance


DEMO_BEST = 5
"""Faces the demo chooses from its sample library."""
PROGRESS_EVERY_S = 5.0
"""Seconds between progress lines when stderr is not a terminal."""
_STATUS_NAMES = {Status.WRITTEN: "new", Status.KEPT: "kept", Status.SKIPPED: "skipped",
                 Status.FAILED: "failed"}  # fmt: skip


class _ProgressLines:
    """Progress for logs: "cropping: 120/480 (100 new, 20 kept), 14 s" every few seconds."""

    def __init__(self) -> None:
        self.phase, self.total, self.done = "reading", 0, 0
        self.tally: dict[str, int] = {}
        self.began = self.last = time.monotonic()

    def start(self, total: int, phase: str) -> None:
        self.phase, self.total, self.done = phase, total, 0
        self.tally.clear()
        self.began = time.monotonic()

    def advance(self, outcome: Outcome | None) -> None:
        self.done += 1
        if outcome is not None:
            key = _STATUS_NAMES[outcome.status]
            self.tally[key] = self.tally.get(key, 0) + 1
        now = time.monotonic()
        if now - self.last < PROGRESS_EVERY_S and self.done != self.total:
            return
        self.last = now
        counts = ", ".join(f"{v} {k}" for k, v in self.tally.items())
        of = f"/{self.total}" if self.total else ""
        err_console.print(
            f"{self.phase}: {self.done}{of}" + (f" ({counts})" if counts else "")
            + f", {now - self.began:.0f} s",
            markup=False, highlight=False, soft_wrap=True,
        )  # fmt: skip


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
    try:
        from skimage import data  # noqa: F401  (the demo's photos ship inside scikit-image)

        from faceset.demo import build_library
    except ModuleNotFoundError as e:
        raise ConfigError(
            f"faceset demo needs the demo extra ({e.name} is not installed):"
            " pip install 'faceset[demo]'"
        ) from None

    def built(done: int, total: int) -> None:
        if not quiet:
            err_console.print(f"building the sample library: {done}/{total} photos",
                              markup=False, highlight=False, soft_wrap=True)  # fmt: skip

    library = build_library(out / "library", built)
    cfg = config.load(
        None,
        {
            "library": {
                "db": library.db_url,
                "originals": library.originals,
                "storage": library.storage,
            },
            # The best few, so the export shows its choice: report.html and a contact sheet.
            "select": {"best": DEMO_BEST},
            "export": {"out": out / "export"},
        },
        environ={},
    )
    if not quiet:
        out_console.print(
            f"sample library: {library.root} (PhotoPrism SQLite index {library.index})",
            highlight=False, markup=False, soft_wrap=True,
        )  # fmt: skip
        table = Table("Name", "Alias", "UID", "Faces")
        for p in pipeline.list_people(cfg):
            table.add_row(p.name, p.alias, p.uid, str(p.faces))
        out_console.print(table)
    result = run_export(cfg, library.person, quiet=quiet)
    if not quiet:
        out_console.print(
            f"images: {result.out / 'faces'}\nmanifest: {result.out / 'manifest.jsonl'}"
            f"\ncontact sheet: {result.out / 'contact_sheet.png'}\nreport: {result.report}"
            f"\nopen {result.out / 'report.html'} to see which faces were chosen and why",
            highlight=False, markup=False, soft_wrap=True,
        )  # fmt: skip
