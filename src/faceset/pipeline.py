"""The export run, stage by stage: read the library, plan each face, crop, record."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faceset import sources
from faceset.config import Config
from faceset.crop import CropJob, CropSettings
from faceset.crop.pool import crop_all, default_workers
from faceset.errors import ConfigError
from faceset.export import manifest
from faceset.export.report import problem, write_report
from faceset.model import Face, Outcome, Person, Reason, Status, Summary
from faceset.sources import Source
from faceset.sources.people import resolve_person
from faceset.sources.roots import UnsafePath, resolve_in_root

log = logging.getLogger(__name__)

OnOutcome = Callable[[Outcome], None]
OnStart = Callable[[int], None]


def _ignore(_: Any) -> None:
    return None


@dataclass(slots=True)
class ExportResult:
    person: Person
    out: Path
    summary: Summary
    report: Path
    problems: list[dict[str, Any]] = field(default_factory=list)


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


def export(
    config: Config, person_query: str, on_start: OnStart = _ignore, on_outcome: OnOutcome = _ignore
) -> ExportResult:
    """Write every usable face of one person to ``config.export.out``; return what happened."""
    out = config.export.out
    if out is None:
        raise ConfigError("no output folder: pass --out DIR")
    if "/" not in config.library.roots():
        raise ConfigError(
            "no originals folder: pass --originals DIR or set PHOTOPRISM_ORIGINALS_PATH"
        )
    source = open_source(config)
    try:
        person = resolve_person(source.people(), person_query)
        picks = {
            "confirmed_only": config.select.confirmed_only,
            "include_archived": config.select.include_archived,
        }
        on_start(source.count_faces(person, **picks))
        settings = config.crop.settings()
        summary, problems = _crop_faces(
            source, source.faces(person, **picks), out, settings, config, on_outcome
        )
    finally:
        source.close()
    report = write_report(out, person, summary, problems, config.model_dump(mode="json"))
    log.info(
        "%s: %d faces -> %d images (%d new), %d skipped, %d failed",
        person.name, summary.found, summary.images, summary.written,
        sum(summary.skipped.values()), sum(summary.failed.values()),
    )  # fmt: skip
    return ExportResult(person, out, summary, report, problems)


def _crop_faces(
    source: Source,
    faces: Iterator[Face],
    out: Path,
    settings: CropSettings,
    config: Config,
    on_outcome: OnOutcome,
) -> tuple[Summary, list[dict[str, Any]]]:
    previous = manifest.read_records(out)
    journal = manifest.Journal(out)
    summary = Summary()
    problems: list[dict[str, Any]] = []
    current: dict[str, str] = {}  # marker uid -> work key of every image the new manifest lists

    def jobs() -> Iterator[CropJob]:
        for face in faces:
            summary.found += 1
            key = manifest.work_key(face, settings)
            image = manifest.image_name(face)
            old = previous.get(face.marker_uid)
            if old and old.get("key") == key and (out / old["image"]).is_file():
                others = tuple(filter(None, map(manifest.box_of, old.get("others", []))))
                kept = Outcome(
                    face, Status.KEPT, image=old["image"], box=manifest.box_of(old.get("box")),
                    crop=manifest.box_of(old.get("crop")), others=others,
                )  # fmt: skip
                finish(kept, key)
                continue
            try:
                path = _locate(source, face)
            except UnsafePath as e:
                finish(Outcome(face, Status.SKIPPED, reason=Reason.UNSAFE_PATH, detail=str(e)), key)
                continue
            except KeyError as e:
                finish(
                    Outcome(
                        face, Status.SKIPPED, reason=Reason.UNKNOWN_ROOT, detail=str(e.args[0])
                    ),
                    key,
                )
                continue
            current[face.marker_uid] = key
            yield CropJob(face, path, out / image, image, settings)

    def finish(outcome: Outcome, key: str) -> None:
        summary.add(outcome)
        if outcome.status in (Status.WRITTEN, Status.KEPT):
            current[outcome.face.marker_uid] = key
            journal.add(manifest.record(outcome, key))
        else:
            current.pop(outcome.face.marker_uid, None)
            problems.append(problem(outcome))
            log.warning("%s (%s): %s", outcome.face.file_name, outcome.reason, outcome.detail)
        for warning in outcome.warnings:
            log.warning("%s: %s", outcome.face.file_name, warning)
        on_outcome(outcome)

    workers = config.export.workers or default_workers()
    try:
        for outcome in crop_all(jobs(), workers):
            finish(outcome, current[outcome.face.marker_uid])
    except BaseException:
        journal.close()  # keep the journal: the next run picks up from it
        raise
    finished = manifest.read_records(out)
    journal.finish(finished[uid] for uid in sorted(current, key=lambda u: finished[u]["image"]))
    summary.removed = _remove_stale_images(out, previous, finished, current)
    return summary, problems


def _locate(source: Source, face: Face) -> Path:
    root = source.roots.get(face.root)
    if root is None:
        raise KeyError(
            f"no folder for file root {face.root!r}; pass --originals/--storage/--sidecar"
        )
    return resolve_in_root(root, face.file_name)


def _remove_stale_images(
    out: Path,
    previous: dict[str, dict[str, Any]],
    finished: dict[str, dict[str, Any]],
    current: dict[str, str],
) -> int:
    """Delete images this tool wrote earlier for faces no longer exported; return how many."""
    keep = {finished[uid]["image"] for uid in current}
    removed = 0
    for uid, rec in previous.items():
        image = rec.get("image")
        if uid in current or not isinstance(image, str) or image in keep:
            continue
        path = out / image
        if path.is_file() and path.parent.name == manifest.IMAGES:
            path.unlink()
            removed += 1
    return removed
