"""The export run, stage by stage: read the library, plan each face, crop, record."""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from faceset import sources
from faceset.config import Config
from faceset.crop import CropJob, CropSettings
from faceset.crop.pool import crop_all, map_bounded, start_early
from faceset.errors import ConfigError, PersonNotFound, SourceError
from faceset.export import manifest
from faceset.export.claim import claim_output
from faceset.export.layouts import LayoutResult, write_layouts
from faceset.export.report import problem, write_report
from faceset.export.settings_file import write_settings
from faceset.model import Face, Outcome, Person, Reason, Status, Summary, root_name
from faceset.select.config import oldest_allowed
from faceset.sources import Source
from faceset.sources.capabilities import HasEmbeddings
from faceset.sources.people import resolve_person
from faceset.sources.roots import RootResolver, UnsafePath

if TYPE_CHECKING:
    from faceset.select.choose import Decision, Selection

log = logging.getLogger(__name__)

OnOutcome = Callable[[Outcome], None]
OnStart = Callable[[int, str], None]
"""Called with the number of items a phase will process and the phase's name."""
OnStep = Callable[[str], None]


def _ignore(*_: Any) -> None:
    return None


@dataclass(slots=True)
class ExportResult:
    person: Person
    out: Path
    summary: Summary
    report: Path
    problems: list[dict[str, Any]] = field(default_factory=list)
    selection: Selection | None = None
    layouts: LayoutResult | None = None


def open_source(config: Config) -> Source:
    """Return the library the config points at."""
    return sources.open_source(config.library)


def list_people(config: Config) -> list[Person]:
    """Return everyone in the library with counts of usable faces."""
    source = open_source(config)
    try:
        return source.people()
    finally:
        source.close()


@dataclass(slots=True)
class SelectResult:
    person: Person
    selection: Selection
    files: dict[str, Path] = field(default_factory=dict)
    """What was written: 'report' (HTML), 'sheet' (PNG), 'selection' (JSON lines)."""


def select(
    config: Config,
    person_query: str | None,
    on_start: OnStart = _ignore,
    on_step: OnStep = _ignore,
) -> SelectResult:
    """Decide which of the person's faces make the best training set, with a reason for each.

    Writes report.html, contact_sheet.png and selection.jsonl when ``config.export.out`` is set.
    """
    _require_originals(config)
    start_early(config.export.worker_count())
    source = open_source(config)
    try:
        person = _resolve(source, person_query, config)
        _require_faces(source, person, config)
        selection = _select(source, person, config, on_start, on_step)
    finally:
        source.close()
    files = _write_selection(config.export.out, person, selection) if config.export.out else {}
    return SelectResult(person, selection, files)


def export(
    config: Config,
    person_query: str | None,
    on_start: OnStart = _ignore,
    on_outcome: OnOutcome = _ignore,
    on_step: OnStep = _ignore,
) -> ExportResult:
    """Write the person's faces to ``config.export.out`` (every usable one, or with
    ``config.select.best`` the best N and a report of why); return what happened."""
    out = config.export.out
    if out is None:
        raise ConfigError("no output folder: pass --out DIR")
    _require_originals(config)
    start_early(config.export.worker_count())
    source = open_source(config)
    selection = None
    try:
        person = _resolve(source, person_query, config)
        _require_faces(source, person, config)
        settings = config.crop.settings()
        if config.select.best:
            selection = _select(source, person, config, on_start, on_step)
            held = [d.face for d in selection.decisions if d.reason == "held_out"]
            faces: Iterator[Face] = iter([d.face for d in selection.chosen] + held)
            splits = {f.marker_uid: manifest.HOLDOUT for f in held}
            on_start(len(selection.chosen) + len(held), "cropping")
        else:
            splits = {}
            faces = source.faces(person, **_picks(config))
            on_start(source.count_faces(person, **_picks(config)), "cropping")
        # One run at a time writes into ``out``: held from the first image to the report.
        with claim_output(out):
            with _few_collections():
                summary, problems, records = _crop_faces(
                    source, faces, out, settings, config, on_outcome, _oldest(config), splits
                )
            source.close()  # the library is done with; the rest is the output folder's
            layouts, report = _write_outputs(
                out, config, person, summary, problems, records, selection
            )
    finally:
        source.close()
    log.info(
        "%s: %d faces -> %d images (%d new), %d skipped, %d failed",
        person.name, summary.found, summary.images, summary.written,
        sum(summary.skipped.values()), sum(summary.failed.values()),
    )  # fmt: skip
    return ExportResult(person, out, summary, report, problems, selection, layouts)


_DIGITS = re.compile(r"\d+")
"""Warnings that differ only in their numbers are one kind ("decodes as NxN but was ...")."""


@dataclass(slots=True)
class _Noted:
    """Problems and warnings by kind: a count and the first few files, for one summary line
    per kind at the end of a run."""

    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, kind: str, file_name: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        shown = self.examples.setdefault(kind, [])
        if len(shown) < 3:
            shown.append(file_name)

    def log(self, out: Path) -> None:
        for kind, count in sorted(self.counts.items(), key=lambda item: -item[1]):
            faces = "1 face" if count == 1 else f"{count:,} faces"
            more = ", ..." if count > len(self.examples[kind]) else ""
            log.warning(
                "%s: %s (%s%s); every one in %s, or run with -v",
                kind, faces, ", ".join(self.examples[kind]), more, out / "report.json",
            )  # fmt: skip


CRASHED_FILE = ".faceset-crashed.json"
"""Work keys of faces that killed their worker: a re-run passes them by instead of crashing."""


def _read_crashed(out: Path) -> set[str]:
    try:
        keys = json.loads((out / CRASHED_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    return {str(k) for k in keys} if isinstance(keys, list) else set()


def _write_crashed(out: Path, keys: set[str]) -> None:
    path = out / CRASHED_FILE
    if keys:
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(sorted(keys)) + "\n", encoding="utf-8")
    else:
        path.unlink(missing_ok=True)


def _write_outputs(
    out: Path,
    config: Config,
    person: Person,
    summary: Summary,
    problems: list[dict[str, Any]],
    records: list[dict[str, Any]],
    selection: Selection | None,
) -> tuple[LayoutResult | None, Path]:
    """Write the trainer layouts, faceset.toml, the selection report and report.json."""
    layouts = None
    extra: dict[str, Any] = {}
    if config.export.layout != "none":
        training = [r for r in records if r.get("split", manifest.TRAIN) == manifest.TRAIN]
        layouts = write_layouts(out, training, config.export, person.name)
        extra["layouts"] = _layout_summary(layouts)
    write_settings(out, {**config.model_dump(), "person": {"uid": person.uid, "name": person.name}})
    if selection is not None:
        extra["selection"] = selection.counts()
        _write_selection(out, person, selection)
    report = write_report(out, person, summary, problems, config.model_dump(mode="json"), extra)
    return layouts, report


@contextlib.contextmanager
def _few_collections() -> Iterator[None]:
    """Run the block with the cyclic garbage collector triggered far less often.

    Planning a large library allocates a few records per face and frees nearly none, so the
    collector's default pace only rescans a growing heap: a tenth of a 100,000-face re-run
    (bench/plan.py). Records hold no cycles; reference counting frees what they drop.
    """
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], 100_000), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def _layout_summary(layouts: LayoutResult) -> dict[str, Any]:
    return {
        "images": layouts.images,
        "repeats": layouts.repeats,
        "size": layouts.size,
        "warnings": list(layouts.warnings),
    }


def _resolve(source: Source, query: str | None, config: Config) -> Person:
    """Return the person asked for: ``query`` (--person), else the config's [person] section,
    by UID and, when the UID is unknown to this library, by name."""
    if query:
        person = resolve_person(source.people(), query)
    elif config.person.uid or config.person.name:
        people = source.people()
        try:
            person = resolve_person(people, config.person.uid or config.person.name or "")
        except PersonNotFound:
            if not (config.person.uid and config.person.name):
                raise
            person = resolve_person(people, config.person.name)
    else:
        raise ConfigError("no person given: pass --person NAME (faceset people lists them)")
    flags = [
        f
        for f, on in (
            ("hidden", person.hidden),
            ("private", person.private),
            ("excluded", person.excluded),
        )
        if on
    ]
    if flags:
        # The user hid this person in PhotoPrism; asking by name is consent enough, but say so.
        log.warning(
            "%s is marked %s in the library; exporting anyway", person.name, " and ".join(flags)
        )
    return person


def _require_originals(config: Config) -> None:
    if "/" not in config.library.roots():
        hint = " or set PHOTOPRISM_ORIGINALS_PATH" if config.library.source == "photoprism" else ""
        raise ConfigError(f"no originals folder: pass --originals DIR{hint}")


def _require_faces(source: Source, person: Person, config: Config) -> None:
    """Raise SourceError, saying why, when the library lists no usable face of ``person``:
    an export of nothing would only leave an empty folder behind."""
    picks = _picks(config)
    if source.count_faces(person, **picks):
        return
    why = "faces marked invalid or rejected, and faces on deleted, missing or broken files, do not count"
    if not picks["include_archived"] and source.count_faces(
        person, **{**picks, "include_archived": True}
    ):
        why = "all of them are on archived photos; pass --include-archived to use them"
    elif picks["confirmed_only"] and source.count_faces(
        person, include_archived=picks["include_archived"]
    ):
        why = "none is confirmed; leave out --confirmed-only to use automatic matches too"
    raise SourceError(f"no usable faces of {person.name}: {why}")


def _picks(config: Config) -> dict[str, bool]:
    return {
        "confirmed_only": config.select.confirmed_only,
        "include_archived": config.select.include_archived,
    }


def clock() -> datetime:
    """Return "now" for a run: recency, --years and the report's date count from it (tests fix it)."""
    return datetime.now()


def _oldest(config: Config) -> datetime | None:
    return oldest_allowed(config.select, clock())


def _select(
    source: Source, person: Person, config: Config, on_start: OnStart, on_step: OnStep
) -> Selection:
    # Selection's modules (numpy, the decoders, the face model) load only when selecting: a plain
    # export starts without them.
    from faceset.select import choose, face_model
    from faceset.select.analyze import Analysis, AnalysisJob, analyze_face

    faces = list(source.faces(person, **_picks(config)))
    if isinstance(source, HasEmbeddings):
        faces = source.with_embeddings(faces)
    # The local model is slow on a CPU: run it only where the library has no embedding.
    wanted = config.select.face_model
    if wanted == "on" and not face_model.available():
        raise ConfigError(
            "face_model = 'on' needs the local face model: pip install 'faceset[identity]'"
        )
    local = wanted != "off" and face_model.available() and any(f.embedding is None for f in faces)
    settings = replace(config.crop.settings(), upscale=True)
    analyses: list[Analysis] = []
    jobs: list[AnalysisJob] = []
    resolver = RootResolver()
    for face in faces:
        try:
            path = _locate(source, face, resolver)
        except (UnsafePath, KeyError) as e:
            reason = Reason.UNSAFE_PATH if isinstance(e, UnsafePath) else Reason.UNKNOWN_ROOT
            outcome = Outcome(face, Status.SKIPPED, reason=reason, detail=str(e.args[0]))
            analyses.append(Analysis(face, problem=outcome))
            continue
        crop = CropJob(face, path, path, "", settings)
        jobs.append(AnalysisJob(crop, local and face.embedding is None))
    on_start(len(jobs), "measuring")
    workers = config.export.worker_count()
    for analysis in map_bounded(analyze_face, jobs, workers):
        analyses.append(analysis)
        on_step("problem" if analysis.problem else "measured")
    order = {f.marker_uid: i for i, f in enumerate(faces)}
    analyses.sort(key=lambda a: order[a.face.marker_uid])
    selection = choose.choose(analyses, config.select, settings.size, settings.face_ratio, clock())
    left = ", ".join(f"{n} {r}" for r, n in sorted(selection.counts().items()) if r != "chosen")
    log.info("%s: %d faces -> %d chosen%s", person.name, len(faces), len(selection.chosen),
             f" ({left})" if left else "")  # fmt: skip
    shortfall = selection.shortfall()
    if shortfall:
        log.warning("%s: %s", person.name, shortfall)
    for warning in selection.warnings:
        log.warning("%s", warning)
    return selection


def _write_selection(out: Path, person: Person, selection: Selection) -> dict[str, Path]:
    from faceset.report.html import write_html
    from faceset.report.sheet import write_sheet

    out.mkdir(parents=True, exist_ok=True)
    now = clock()
    lines = [json.dumps(decision_record(d), ensure_ascii=False) for d in selection.decisions]
    tmp = out / ".selection.jsonl.tmp"
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(out / "selection.jsonl")
    return {
        "report": write_html(out / "report.html", person, selection, now),
        "sheet": write_sheet(out / "contact_sheet.png", selection.decisions),
        "selection": out / "selection.jsonl",
    }


def decision_record(d: Decision) -> dict[str, Any]:
    """Return one line of selection.jsonl: the face, the decision and the measurements."""
    stats = d.stats
    return {
        "marker_uid": d.face.marker_uid,
        "photo_uid": d.face.photo_uid,
        "source": {"root": root_name(d.face.root), "path": d.face.file_name},
        "taken_at": d.face.taken_at.isoformat() if d.face.taken_at else None,
        "chosen": d.chosen,
        "reason": d.reason,
        "detail": d.detail,
        "score": d.score,
        "identity_distance": None if d.distance is None else round(d.distance, 4),
        "sharpness": None if stats is None else round(stats.sharpness, 1),
        "face_px": None if stats is None else round(stats.face_px),
        "yaw": None if stats is None or stats.yaw is None else round(stats.yaw, 2),
    }


def _crop_faces(
    source: Source,
    faces: Iterator[Face],
    out: Path,
    settings: CropSettings,
    config: Config,
    on_outcome: OnOutcome,
    oldest: datetime | None = None,
    splits: dict[str, str] | None = None,
) -> tuple[Summary, list[dict[str, Any]], list[dict[str, Any]]]:
    """Crop ``faces`` into ``out``; ``splits`` names faces kept out of training (holdout).

    Returns the summary, the problems and the new manifest's records.
    """
    split_of = splits or {}
    previous = manifest.read_records(out)
    present = manifest.images_present(out)
    journal = manifest.Journal(out)
    resolver = RootResolver()
    summary = Summary()
    problems: list[dict[str, Any]] = []
    records: dict[str, dict[str, Any]] = {}  # marker uid -> record of the new manifest
    in_flight: dict[str, str] = {}  # marker uid -> work key of a face being cropped

    seen: set[str] = set()
    noted = _Noted()
    crashed_before, crashed_now = _read_crashed(out), set[str]()

    def jobs() -> Iterator[CropJob]:
        for face in faces:
            summary.found += 1
            if face.marker_uid in seen:
                # A broken index lists a marker twice: the first one is the face's.
                twice = Outcome(face, Status.FAILED, reason=Reason.ERROR,
                                detail=f"the library lists marker {face.marker_uid} twice")  # fmt: skip
                summary.add(twice)
                problems.append(problem(twice))
                on_outcome(twice)
                continue
            seen.add(face.marker_uid)
            split = split_of.get(face.marker_uid, manifest.TRAIN)
            key = manifest.work_key(face, settings, split)
            if oldest and face.taken_at and face.taken_at < oldest:
                detail = f"taken {face.taken_at:%Y-%m-%d}, before {oldest:%Y-%m-%d}"
                finish(Outcome(face, Status.SKIPPED, reason=Reason.TOO_OLD, detail=detail), key)
                continue
            try:
                image = manifest.image_name(face, split)
            except UnsafePath as e:
                finish(Outcome(face, Status.SKIPPED, reason=Reason.UNSAFE_PATH, detail=str(e)), key)
                continue
            old = previous.get(face.marker_uid)
            if old and old.get("key") == key and old.get("image") in present:
                # The old record is replaced by the new one: one copy in memory, not two.
                del previous[face.marker_uid]
                others = tuple(filter(None, map(manifest.box_of, old.get("others", []))))
                kept = Outcome(
                    face, Status.KEPT, image=old["image"], box=manifest.box_of(old.get("box")),
                    crop=manifest.box_of(old.get("crop")), others=others,
                )  # fmt: skip
                finish(kept, key, manifest.kept_record(old, face, key, split))
                continue
            if key in crashed_before:
                detail = ("crashed its worker in an earlier run, so it is passed by; delete"
                          f" {CRASHED_FILE} in the output folder to try it again")  # fmt: skip
                finish(Outcome(face, Status.FAILED, reason=Reason.CRASHED, detail=detail), key)
                continue
            try:
                path = _locate(source, face, resolver)
            except (UnsafePath, ValueError) as e:  # ValueError: a NUL byte in the file name
                finish(Outcome(face, Status.SKIPPED, reason=Reason.UNSAFE_PATH, detail=str(e)), key)
                continue
            except KeyError as e:
                reason, detail = Reason.UNKNOWN_ROOT, str(e.args[0])
                finish(Outcome(face, Status.SKIPPED, reason=reason, detail=detail), key)
                continue
            in_flight[face.marker_uid] = key
            yield CropJob(face, path, out / image, image, settings)

    def finish(outcome: Outcome, key: str, kept: dict[str, Any] | None = None) -> None:
        """Count and record ``outcome``; ``kept`` is the record of an image kept as it was."""
        summary.add(outcome)
        if outcome.reason is Reason.CRASHED:
            crashed_now.add(key)
        uid = outcome.face.marker_uid
        if kept is not None:
            records[uid] = kept
        elif outcome.status is Status.WRITTEN:
            split = split_of.get(uid, manifest.TRAIN)
            records[uid] = manifest.record(outcome, key, settings.size, split)
            # Only new images must survive a kill: kept ones are in the old manifest already.
            journal.add(records[uid])
        else:
            records.pop(uid, None)
            problems.append(problem(outcome))
            # One line per face only with -v: 100,000 missing files would flood the terminal
            # (and Rich spent most of such a run printing them); the summary follows the run.
            log.debug("%s (%s): %s", outcome.face.file_name, outcome.reason, outcome.detail)
            noted.add(str(outcome.reason), outcome.face.file_name)
        for warning in outcome.warnings:
            log.debug("%s: %s", outcome.face.file_name, warning)
            noted.add(_DIGITS.sub("N", warning), outcome.face.file_name)
        on_outcome(outcome)

    workers = config.export.worker_count()
    try:
        for outcome in crop_all(jobs(), workers):
            finish(outcome, in_flight.pop(outcome.face.marker_uid))
    except BaseException:
        journal.close()  # keep the journal: the next run picks up from it
        raise
    _write_crashed(out, crashed_now)
    noted.log(out)
    ordered = sorted(records.values(), key=lambda r: str(r["image"]))
    journal.finish(iter(ordered))
    summary.removed = _remove_stale_images(out, previous, {str(r["image"]) for r in ordered})
    return summary, problems, ordered


def _locate(source: Source, face: Face, resolver: RootResolver) -> Path:
    root = source.roots.get(face.root)
    if root is None:
        raise KeyError(
            f"no folder for file root {face.root!r}; pass --originals/--storage/--sidecar"
        )
    return resolver.resolve(root, face.file_name)


def _remove_stale_images(out: Path, previous: dict[str, dict[str, Any]], keep: set[str]) -> int:
    """Delete images this tool wrote earlier that the new manifest does not list; return how many."""
    removed = 0
    for rec in previous.values():
        image = rec.get("image")
        if not isinstance(image, str) or image in keep:
            continue
        path = out / image
        if path.is_file() and path.parent.name in (manifest.IMAGES, manifest.HOLDOUT):
            path.unlink()
            removed += 1
    return removed
