"""Planning 100,000 faces: the time and peak memory of an export with no image to decode.

Run ``python -m bench.plan``. It writes a PhotoPrism SQLite index of synthetic rows (one person,
100,000 photos, files and face markers; no image files), then runs ``pipeline.export`` twice, each
in a fresh process so that its peak RSS is its own:

- first run: every marker is read, planned (work key, manifest lookup, file path) and dispatched;
  the files are absent, so each ends as a missing-file outcome without an image being opened;
- re-run: every image is already done (a tiny file per face and a manifest with current keys),
  so nothing may be opened or redone.

Targets (issue 3): each under 5 s and 500 MB peak RSS.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from faceset import config, pipeline
from faceset.demo.library import LibraryWriter, MarkerSpec, sqlite_schema
from faceset.export import manifest
from faceset.model import Box, Outcome, RelBox, Status
from faceset.sources.people import resolve_person

PERSON = "Plan Person"
DEFAULT_ROOT = Path("out/bench-plan")


class BulkWriter(LibraryWriter):
    """LibraryWriter's rows, exactly, inserted in batches instead of one transaction each."""

    def __init__(self, engine: sa.Engine) -> None:
        super().__init__(engine)
        self.rows: defaultdict[tuple[str, tuple[str, ...]], list[dict[str, object]]] = defaultdict(
            list
        )

    def _insert(self, table: str, row: dict[str, object]) -> None:
        self.rows[(table, tuple(row))].append(row)

    def flush(self, index: Path) -> None:
        with sqlite3.connect(index) as conn:
            for (table, columns), rows in self.rows.items():
                sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(f':{c}' for c in columns)})"
                conn.executemany(sql, rows)
        self.rows.clear()


def build(root: Path, markers: int) -> Path:
    """Return the index of a library with ``markers`` faces of one person, built once."""
    index = root / "storage" / "index.db"
    stamp = root / "markers.txt"
    if stamp.is_file() and stamp.read_text() == str(markers):
        return index
    if root.exists():
        shutil.rmtree(root)
    index.parent.mkdir(parents=True)
    (root / "originals").mkdir()
    with sqlite3.connect(index) as conn:
        conn.executescript(sqlite_schema())
    writer = BulkWriter(sa.create_engine("sqlite://"))
    person = writer.person(PERSON)
    taken = datetime(2024, 6, 1)
    for i in range(markers):
        taken -= timedelta(minutes=5)
        name = f"{taken:%Y/%m}/IMG_{i:06d}.jpg"
        writer.file(
            writer.photo(taken, name=name), name, None, width=4000, height=3000,
            orientation=1 + i % 8, file_hash=f"{i:040x}",
            markers=(MarkerSpec(RelBox(0.4, 0.2, 0.15, 0.2), person),),
        )  # fmt: skip
    writer.flush(index)
    stamp.write_text(str(markers))
    return index


def settings(root: Path, out: Path) -> config.Config:
    index = root / "storage" / "index.db"
    return config.load(
        None,
        {
            "library": {"db": f"sqlite:///{index}", "originals": root / "originals"},
            # Planning, not the trainer folders: those have their own re-run shortcut.
            "export": {"out": out, "workers": 1, "layout": "none"},
        },
        environ={},
    )


def mark_done(root: Path, out: Path) -> None:
    """Write a tiny image per face and a manifest with current keys, as a finished export has."""
    cfg = settings(root, out)
    crop = cfg.crop.settings()
    source = pipeline.open_source(cfg)
    (out / manifest.IMAGES).mkdir(parents=True, exist_ok=True)
    try:
        person = resolve_person(source.people(), PERSON)
        with (out / manifest.MANIFEST).open("w", encoding="utf-8") as f:
            for face in source.faces(person):
                image = manifest.image_name(face)
                (out / image).write_bytes(b"\xff\xd8\xff\xd9")
                done = Outcome(
                    face, Status.WRITTEN, image=image,
                    box=Box(1600, 600, 2200, 1200), crop=Box(1150, 150, 2650, 1650),
                )  # fmt: skip
                rec = manifest.record(done, manifest.work_key(face, crop), crop.size)
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    finally:
        source.close()


def run_phase(root: Path, out: Path) -> None:
    """Run one export in this process and print its time and summary as JSON."""
    # 100,000 missing-file warnings are the expected outcome here, not news.
    logging.getLogger("faceset").setLevel(logging.ERROR)
    start = time.perf_counter()
    result = pipeline.export(settings(root, out), PERSON)
    seconds = time.perf_counter() - start
    s = result.summary
    print(json.dumps({"seconds": seconds, "found": s.found, "kept": s.kept, "failed": s.failed}))


def timed_child(root: Path, out: Path) -> tuple[dict[str, object], int]:
    """Return a phase's report and its peak RSS in KiB, from a fresh process."""
    command = [
        sys.executable,
        "-m",
        "bench.plan",
        "--phase",
        "--root",
        str(root),
        "--out",
        str(out),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE)
    assert process.stdout is not None
    report = json.loads(process.stdout.read())
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"phase failed with status {process.returncode}")
    return report, usage.ru_maxrss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--markers", type=int, default=100_000)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--phase", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        run_phase(args.root, args.out)
        return
    start = time.perf_counter()
    build(args.root, args.markers)
    print(f"index of {args.markers} markers: {args.root} ({time.perf_counter() - start:.0f} s)")
    out = args.root / "export"
    for name, prepare in (("first run (plan)", None), ("re-run, all done", mark_done)):
        if out.exists():
            shutil.rmtree(out)
        if prepare is not None:
            prepare(args.root, out)
        report, peak = timed_child(args.root, out)
        print(
            f"{name:20s} {report['seconds']:6.2f} s  peak RSS {peak / 1024:5.0f} MiB  "
            f"found {report['found']}, kept {report['kept']}, failed {report['failed']}"
        )


if __name__ == "__main__":
    main()
