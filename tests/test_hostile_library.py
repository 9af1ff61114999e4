"""Hostile and broken libraries: what an index holds is data, never a path or a crash."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from faceset.cli import app
from factories import Database, make_library

runner = CliRunner()


def test_uids_that_would_leave_the_output_folder_are_skipped_as_unsafe_paths(
    sqlite_db: Database, tmp_path: Path
) -> None:
    lib = make_library(sqlite_db.engine, tmp_path / "library")
    jane = lib.person("Jane Doe")
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        lib.photo_file(name, jane)
    with sqlite_db.engine.begin() as conn:
        photo_ids = [r[0] for r in conn.execute(sa.text("SELECT id FROM photos ORDER BY id"))]
        conn.execute(sa.text("UPDATE photos SET photo_uid = '../../../evil' WHERE id = :i"),
                     {"i": photo_ids[0]})  # fmt: skip
        file_uid = conn.execute(
            sa.text("SELECT file_uid FROM files WHERE photo_id = :i"), {"i": photo_ids[1]}
        ).scalar_one()
        conn.execute(sa.text("UPDATE markers SET marker_uid = 'x/../../../../evil' WHERE file_uid = :f"),
                     {"f": file_uid})  # fmt: skip
    out = tmp_path / "deep" / "er" / "out"
    before = set(tmp_path.rglob("*"))

    result = runner.invoke(app, ["export", "--db", sqlite_db.url, "--originals",
                                 str(lib.originals), "-p", "Jane Doe", "--out", str(out),
                                 "--size", "256", "--layout", "none"])  # fmt: skip

    assert result.exit_code == 0, result.stderr
    written_outside = [
        p for p in set(tmp_path.rglob("*")) - before
        if out not in p.parents and p != out and p not in out.parents
    ]  # fmt: skip
    assert written_outside == []
    assert not any("evil" in name for _, _, files in os.walk(tmp_path) for name in files)
    import json

    report = json.loads((out / "report.json").read_text())
    reasons = sorted(p["reason"] for p in report["problems"])
    assert reasons == ["unsafe_path", "unsafe_path"]
    assert report["counts"]["written"] == 1


def test_a_box_with_a_missing_or_non_numeric_coordinate_is_a_bad_box(
    sqlite_db: Database, tmp_path: Path
) -> None:
    import json

    lib = make_library(sqlite_db.engine, tmp_path / "library")
    jane = lib.person("Jane Doe")
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        lib.photo_file(name, jane)
    with sqlite_db.engine.begin() as conn:
        uids = [
            r[0]
            for r in conn.execute(sa.text("SELECT marker_uid FROM markers ORDER BY marker_uid"))
        ]
        conn.execute(sa.text("UPDATE markers SET x = NULL WHERE marker_uid = :u"), {"u": uids[0]})
        conn.execute(sa.text("UPDATE markers SET y = 'abc' WHERE marker_uid = :u"), {"u": uids[1]})
    out = tmp_path / "out"

    result = runner.invoke(app, ["export", "--db", sqlite_db.url, "--originals",
                                 str(lib.originals), "-p", "Jane Doe", "--out", str(out),
                                 "--size", "256", "--layout", "none"])  # fmt: skip

    assert result.exit_code == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    bad = {p["marker_uid"]: (p["reason"], p["detail"]) for p in report["problems"]}
    assert bad == {
        uid: ("bad_box", "the box has a missing or non-numeric coordinate") for uid in uids[:2]
    }
    assert report["counts"]["written"] == 1


def _jane(sqlite_db: Database, tmp_path: Path) -> Path:
    lib = make_library(sqlite_db.engine, tmp_path / "library")
    jane = lib.person("Jane Doe")
    lib.photo_file("a.jpg", jane)
    return lib.originals


def test_a_second_export_into_a_held_folder_stops_in_one_line(
    sqlite_db: Database, tmp_path: Path
) -> None:
    import subprocess
    import sys

    originals, out = _jane(sqlite_db, tmp_path), tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys, time; from pathlib import Path; from faceset.export.claim import claim_output\n"
            "with claim_output(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)"
        ), str(out)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"

        result = runner.invoke(app, ["export", "--db", sqlite_db.url, "--originals",
                                     str(originals), "-p", "Jane Doe", "--out", str(out)])  # fmt: skip
    finally:
        holder.kill()
        holder.wait()

    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: another faceset run (pid {holder.pid}, started ")
    assert result.stderr.endswith(
        f") is writing to {out}; wait for it to finish or pass another --out\n"
    )
    assert not (out / "faces").exists()
    again = runner.invoke(app, ["export", "--db", sqlite_db.url, "--originals", str(originals),
                                "-p", "Jane Doe", "--out", str(out), "--size", "256"])  # fmt: skip
    assert again.exit_code == 0, again.stderr  # the lock went with the killed process


def test_an_unusable_out_is_one_line_naming_it(sqlite_db: Database, tmp_path: Path) -> None:
    originals = _jane(sqlite_db, tmp_path)
    a_file = tmp_path / "taken"
    a_file.write_text("x")
    args = ["export", "--db", sqlite_db.url, "--originals", str(originals), "-p", "Jane Doe"]

    is_file = runner.invoke(app, [*args, "--out", str(a_file)])
    under_file = runner.invoke(app, [*args, "--out", str(a_file / "out")])

    assert (is_file.exit_code, is_file.stderr) == (
        1, f"error: --out {a_file} is a file, not a folder; pass a folder\n"
    )  # fmt: skip
    assert under_file.exit_code == 1
    assert under_file.stderr.startswith(f"error: cannot write to --out {a_file / 'out'}: ")
    assert under_file.stderr.count("\n") == 1


def test_a_nul_byte_in_a_file_name_is_that_face_s_problem_not_the_run_s(
    sqlite_db: Database, tmp_path: Path
) -> None:
    import json

    lib = make_library(sqlite_db.engine, tmp_path / "library")
    jane = lib.person("Jane Doe")
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        lib.photo_file(name, jane)
    with sqlite_db.engine.begin() as conn:
        names = [
            r[0] for r in conn.execute(sa.text("SELECT file_name FROM files ORDER BY file_name"))
        ]
        conn.execute(sa.text("UPDATE files SET file_name = :n WHERE file_name = :o"),
                     {"n": "a\x00.jpg", "o": names[0]})  # fmt: skip
    out = tmp_path / "out"

    result = runner.invoke(app, ["export", "--db", sqlite_db.url, "--originals",
                                 str(lib.originals), "-p", "Jane Doe", "--out", str(out),
                                 "--size", "256", "--layout", "none"])  # fmt: skip

    assert result.exit_code == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert [p["reason"] for p in report["problems"]] == ["error"]
    assert "null byte" in report["problems"][0]["detail"]
    assert report["counts"]["written"] == 2
    assert (out / "manifest.jsonl").is_file()


def test_many_missing_files_are_one_summary_line_and_each_one_with_verbose(
    sqlite_db: Database, tmp_path: Path
) -> None:
    lib = make_library(sqlite_db.engine, tmp_path / "library")
    jane = lib.person("Jane Doe")
    for i in range(60):
        lib.photo_file(f"p{i:03d}.jpg", jane)
    for photo in lib.originals.rglob("*.jpg"):
        photo.unlink()
    args = ["export", "--db", sqlite_db.url, "--originals", str(lib.originals), "-p", "Jane Doe",
            "--layout", "none"]  # fmt: skip

    quiet = runner.invoke(app, [*args, "--out", str(tmp_path / "a")])
    verbose = runner.invoke(app, [*args, "--out", str(tmp_path / "b"), "-v"])

    assert quiet.exit_code == 0, quiet.stderr
    said = " ".join(quiet.stderr.split())  # Rich wraps long lines at the terminal's width
    assert said.count("missing_file:") == 1
    assert "missing_file: 60 faces (p" in said
    assert "every one in" in said
    assert verbose.stderr.count("(missing_file)") == 60


def test_a_fifo_and_a_pixel_bomb_are_problems_not_a_hang_or_a_blown_worker(
    sqlite_db: Database, tmp_path: Path
) -> None:
    import json
    import struct
    import zlib

    lib = make_library(sqlite_db.engine, tmp_path / "library")
    jane = lib.person("Jane Doe")
    for name in ("fifo.jpg", "bomb.png", "ok.jpg"):
        lib.photo_file(name, jane)
    fifo = next(lib.originals.rglob("fifo.jpg"))
    fifo.unlink()
    os.mkfifo(fifo)  # nothing ever writes to it: a blocking read would wait forever
    bomb = next(lib.originals.rglob("bomb.png"))
    # A real PNG header claiming 30000 x 30000 px, with a little compressed data behind it.

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    raw = zlib.compress(b"\0" * 1_000_000)
    bomb.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")
    )
    out = tmp_path / "out"

    result = runner.invoke(app, ["export", "--db", sqlite_db.url, "--originals",
                                 str(lib.originals), "-p", "Jane Doe", "--out", str(out),
                                 "--size", "256", "--layout", "none", "--allow-changed"])  # fmt: skip

    assert result.exit_code == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    found = {
        p["source"]["path"].rsplit("/", 1)[-1]: (p["reason"], p["detail"])
        for p in report["problems"]
    }
    assert found["fifo.jpg"][0] == "unreadable"
    assert "is a FIFO, not a photo file" in found["fifo.jpg"][1]
    assert found["bomb.png"] == (
        "too_large",
        "30000x30000 px is more than the 250 MP faceset decodes",
    )
    assert report["counts"]["written"] == 1


def _busy_export(sqlite_db: Database, tmp_path: Path, photos: int = 120) -> list[str]:
    lib = make_library(sqlite_db.engine, tmp_path / "library")
    jane = lib.person("Jane Doe")
    for i in range(photos):
        lib.photo_file(f"p{i:03d}.jpg", jane, size=(2400, 1800))
    return [sys.executable, "-m", "faceset", "export", "--db", sqlite_db.url, "--originals",
            str(lib.originals), "-p", "Jane Doe", "--out", str(tmp_path / "out"),
            "--layout", "none", "--workers", "2", "--json"]  # fmt: skip


def _session_alive(sid: int) -> list[int]:
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":  # field 6 of stat: the session id
            alive.append(int(stat.parent.name))
    return alive


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM"])
def test_ctrl_c_and_sigterm_stop_the_run_in_one_line_with_exit_130(
    how: str, sqlite_db: Database, tmp_path: Path
) -> None:
    import signal
    import subprocess

    process = subprocess.Popen(_busy_export(sqlite_db, tmp_path), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    assert process.stdout is not None
    assert '"event": "face"' in process.stdout.readline()  # it is cropping

    if how == "SIGINT":  # Ctrl-C: the terminal signals the whole process group, workers too
        os.killpg(process.pid, signal.SIGINT)
    else:  # a service manager stops the main process
        process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == 130
    assert stderr.endswith("images written; run the same command to resume\n"), stderr
    assert stderr.startswith("interrupted: ")
    assert stderr.count("\n") == 1


def test_killing_the_main_process_leaves_no_worker_behind(
    sqlite_db: Database, tmp_path: Path
) -> None:
    import signal
    import subprocess
    import time

    process = subprocess.Popen(_busy_export(sqlite_db, tmp_path), stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, start_new_session=True)  # fmt: skip
    assert process.stdout is not None
    assert '"event": "face"' in process.stdout.readline()
    assert len(_session_alive(process.pid)) >= 3  # the run, its forkserver, its workers

    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 20
    while _session_alive(process.pid) and time.monotonic() < deadline:
        time.sleep(0.2)

    assert _session_alive(process.pid) == []


def test_temporary_files_of_killed_writes_are_swept_at_the_next_run(
    sqlite_db: Database, tmp_path: Path
) -> None:
    originals, out = _jane(sqlite_db, tmp_path), tmp_path / "out"
    (out / "faces").mkdir(parents=True)
    stale = [out / "faces" / ".p1-m1.jpg.4242.tmp", out / ".report.json.99.tmp"]
    for path in stale:
        path.write_bytes(b"half a file")
    kept = out / "faces" / "notes.txt"
    kept.write_text("mine")

    result = runner.invoke(app, ["export", "--db", sqlite_db.url, "--originals", str(originals),
                                 "-p", "Jane Doe", "--out", str(out), "--size", "256"])  # fmt: skip

    assert result.exit_code == 0, result.stderr
    assert not any(p.exists() for p in stale)
    assert kept.read_text() == "mine"


def test_a_jpeg_libjpeg_warns_about_is_corrupt_unless_allowed_damaged(
    sqlite_db: Database, tmp_path: Path
) -> None:
    import json

    from faceset.crop import libjpeg

    if not libjpeg.available():
        pytest.skip("no libjpeg-turbo here: the fast path that counts its warnings is off")
    lib = make_library(sqlite_db.engine, tmp_path / "library")
    jane = lib.person("Jane Doe")
    lib.photo_file("cut.jpg", jane, size=(1600, 1200), face=(700, 700, 1000, 1000))
    photo = next(lib.originals.rglob("cut.jpg"))
    data = photo.read_bytes()
    # Cut the scan a third of the way in and end the file properly: libjpeg warns "premature
    # end of data segment" and fills the rest (where the face is) with grey.
    photo.write_bytes(data[: len(data) // 3] + b"\xff\xd9")
    args = ["export", "--db", sqlite_db.url, "--originals", str(lib.originals), "-p", "Jane Doe",
            "--size", "256", "--layout", "none", "--allow-changed", "--workers", "1"]  # fmt: skip

    refused = runner.invoke(app, [*args, "--out", str(tmp_path / "a")])
    allowed = runner.invoke(app, [*args, "--out", str(tmp_path / "b"), "--allow-damaged"])

    assert refused.exit_code == 0, refused.stderr
    [problem] = json.loads((tmp_path / "a" / "report.json").read_text())["problems"]
    assert problem["reason"] == "corrupt"
    assert "libjpeg warned" in problem["detail"]
    assert "--allow-damaged" in problem["detail"]
    assert allowed.exit_code == 0, allowed.stderr
    [record] = [
        json.loads(line) for line in (tmp_path / "b" / "manifest.jsonl").read_text().splitlines()
    ]
    assert any("corrupt data; cropped anyway" in w for w in record["warnings"])


def test_a_photo_that_decodes_at_another_size_than_indexed_is_corrupt(
    sqlite_db: Database, tmp_path: Path
) -> None:
    import json

    lib = make_library(sqlite_db.engine, tmp_path / "library")
    jane = lib.person("Jane Doe")
    lib.photo_file("a.jpg", jane, size=(1600, 1200))
    with sqlite_db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE files SET file_width = 1920, file_height = 1440"))
    args = ["export", "--db", sqlite_db.url, "--originals", str(lib.originals), "-p", "Jane Doe",
            "--size", "256", "--layout", "none"]  # fmt: skip

    refused = runner.invoke(app, [*args, "--out", str(tmp_path / "a")])
    allowed = runner.invoke(app, [*args, "--out", str(tmp_path / "b"), "--allow-damaged"])

    assert refused.exit_code == 0, refused.stderr
    [problem] = json.loads((tmp_path / "a" / "report.json").read_text())["problems"]
    assert (problem["reason"], problem["detail"]) == (
        "corrupt",
        "decodes as 1600x1200 but was indexed as 1920x1440; re-index it, or pass --allow-damaged",
    )
    assert allowed.exit_code == 0
    assert json.loads((tmp_path / "b" / "report.json").read_text())["counts"]["written"] == 1


def test_an_arithmetic_jpeg_pillow_cannot_read_is_unsupported_not_corrupt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without libjpeg-turbo, a Pillow built without arithmetic decoding says "broken data
    stream" of an arithmetic-coded JPEG: that is a coding faceset cannot read, not damage."""
    import io

    from PIL import Image

    from faceset.crop import libjpeg, render
    from faceset.crop.job import CropJob, CropSettings
    from faceset.model import Face, RelBox

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "grey").save(buffer, "JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 1] = 0xC9  # SOF9: arithmetic coding
    photo = tmp_path / "arith.jpg"
    photo.write_bytes(bytes(data))
    face = Face(marker_uid="m1", file_uid="f1", photo_uid="p1", subject_uid="s", subject_name="Jane",
                root="/", file_name="arith.jpg", box=RelBox(0.1, 0.1, 0.5, 0.5))  # fmt: skip
    job = CropJob(face, photo, tmp_path / "o.jpg", "faces/o.jpg", CropSettings())
    monkeypatch.setattr(libjpeg, "_lib", None)

    outcome = render._undecodable(job, OSError("broken data stream when reading image file"))
    plain = render._undecodable(
        CropJob(face, tmp_path / "missing.jpg", tmp_path / "o.jpg", "faces/o.jpg", CropSettings()),
        OSError("broken data stream"),
    )

    assert outcome.reason is not None
    assert (outcome.reason.value, outcome.detail.split(":")[0]) == (
        "unreadable", "unsupported JPEG coding (arithmetic)"
    )  # fmt: skip
    assert plain.reason is not None
    assert plain.reason.value == "corrupt"


def test_a_wal_index_in_a_read_only_folder_is_read_as_immutable(
    sqlite_db: Database, tmp_path: Path
) -> None:
    import shutil
    import sqlite3
    import subprocess

    lib = make_library(sqlite_db.engine, tmp_path / "library")
    lib.photo_file("a.jpg", lib.person("Jane Doe"))
    index = Path(sqlite_db.url.removeprefix("sqlite:///"))
    sqlite_db.engine.dispose()
    source = tmp_path / "storage-rw"
    source.mkdir()
    shutil.copy(index, source / "index.db")
    with sqlite3.connect(source / "index.db") as conn:
        conn.execute("PRAGMA journal_mode=WAL")
    for leftover in source.glob("index.db-*"):
        leftover.unlink()  # a clean shutdown: no -wal, no -shm
    mounted = tmp_path / "storage-ro"
    mounted.mkdir()
    if subprocess.run(["mount", "--bind", str(source), str(mounted)], check=False).returncode:
        pytest.skip("cannot bind-mount here to make a read-only folder")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(mounted)], check=True)
        assert not os.access(mounted, os.W_OK)

        result = runner.invoke(app, ["people", "--db", f"sqlite:///{mounted / 'index.db'}"])
    finally:
        subprocess.run(["umount", str(mounted)], check=False)

    assert result.exit_code == 0, result.stderr
    assert "Jane Doe" in result.stdout


def test_a_marker_listed_twice_is_a_failure_and_the_run_goes_on(
    sqlite_db: Database, tmp_path: Path
) -> None:
    import json

    lib = make_library(sqlite_db.engine, tmp_path / "library")
    jane = lib.person("Jane Doe")
    lib.photo_file("a.jpg", jane)
    lib.photo_file("b.jpg", jane)
    # A damaged index: two file rows with one file_uid join the file's marker twice.
    with sqlite_db.engine.begin() as conn:
        for index in ("uix_files_file_uid", "idx_files_search_media", "idx_files_search_timeline"):
            conn.execute(sa.text(f"DROP INDEX {index}"))
        conn.execute(sa.text(
            "INSERT INTO files (photo_id, photo_uid, file_uid, file_name, file_root, file_hash,"
            " file_width, file_height, file_missing, file_error) SELECT photo_id, photo_uid,"
            " file_uid, 'copy-' || file_name, file_root, file_hash, file_width, file_height,"
            " file_missing, file_error FROM files WHERE file_name = 'a.jpg'"
        ))  # fmt: skip
    out = tmp_path / "out"

    result = runner.invoke(app, ["export", "--db", sqlite_db.url, "--originals",
                                 str(lib.originals), "-p", "Jane Doe", "--out", str(out),
                                 "--size", "256", "--layout", "none"])  # fmt: skip

    assert result.exit_code == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["counts"]["written"] == 2
    assert [p["reason"] for p in report["problems"]] == ["error"]
    assert "twice" in report["problems"][0]["detail"]
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 2


def test_a_photo_that_crashes_its_worker_is_crashed_and_passed_by_next_time(
    sqlite_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from collections.abc import Iterable, Iterator

    import crashers
    from faceset import config, pipeline
    from faceset.crop import pool
    from faceset.crop.job import CropJob
    from faceset.crop.render import crashed
    from faceset.model import Outcome

    lib = make_library(sqlite_db.engine, tmp_path / "library")
    jane = lib.person("Jane Doe")
    for i in range(12):
        lib.photo_file(f"p{i:02d}.jpg", jane)
    lib.photo_file("crash.jpg", jane)
    cfg = config.load(None, {
        "library": {"db": sqlite_db.url, "originals": lib.originals},
        "crop": {"size": 256}, "export": {"out": tmp_path / "out", "workers": 2, "layout": "none"},
    }, environ={})  # fmt: skip

    def crops(jobs: Iterable[CropJob], workers: int) -> Iterator[Outcome]:
        return pool.map_bounded(crashers.crop_or_crash, jobs, workers, crashed=crashed)

    monkeypatch.setattr(pipeline, "crop_all", crops)
    first = pipeline.export(cfg, "Jane Doe")
    monkeypatch.undo()  # the photo would crop now: a re-run must not even try it
    again = pipeline.export(cfg, "Jane Doe")

    assert (first.summary.written, first.summary.failed) == (12, {"crashed": 1})
    assert len((tmp_path / "out" / "manifest.jsonl").read_text().splitlines()) == 12
    assert (again.summary.kept, again.summary.failed) == (12, {"crashed": 1})
    assert "earlier run" in again.problems[0]["detail"]


def test_temporary_files_in_trainer_folders_are_swept_after_a_killed_run(
    sqlite_db: Database, tmp_path: Path
) -> None:
    originals, out = _jane(sqlite_db, tmp_path), tmp_path / "out"
    args = ["export", "--db", sqlite_db.url, "--originals", str(originals), "-p", "Jane Doe",
            "--out", str(out), "--size", "256"]  # fmt: skip
    assert runner.invoke(app, args).exit_code == 0
    [concept] = (out / "img").iterdir()
    # What a run killed while writing the layouts leaves: temporaries, and no digest of a
    # finished run.
    stale = [concept / ".p1-m1.jpg.4242.tmp", out / "diffusers" / "train" / ".metadata.jsonl.7.tmp"]
    for path in stale:
        path.write_bytes(b"half a file")
    (out / ".faceset-layouts.digest").unlink()

    result = runner.invoke(app, args)

    assert result.exit_code == 0, result.stderr
    assert [p for p in stale if p.exists()] == []


def test_an_arithmetic_jpeg_the_fast_path_does_not_take_is_unsupported_not_corrupt(
    tmp_path: Path,
) -> None:
    """With libjpeg-turbo present, a progressive arithmetic JPEG or a --pad window past the edge
    still goes to Pillow, which says "broken data stream"."""
    import io

    from PIL import Image

    from faceset.crop import libjpeg, render
    from faceset.crop.job import CropJob, CropSettings
    from faceset.model import Face, RelBox

    if not libjpeg.available():
        pytest.skip("no libjpeg-turbo here: the case above covers it")
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "grey").save(buffer, "JPEG", progressive=True)
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc2")
    data[sof + 1] = 0xCA  # SOF10: progressive, arithmetic coding
    photo = tmp_path / "arith.jpg"
    photo.write_bytes(bytes(data))
    face = Face(marker_uid="m1", file_uid="f1", photo_uid="p1", subject_uid="s", subject_name="Jane",
                root="/", file_name="arith.jpg", box=RelBox(0.1, 0.1, 0.5, 0.5))  # fmt: skip
    job = CropJob(face, photo, tmp_path / "o.jpg", "faces/o.jpg", CropSettings())

    outcome = render._undecodable(job, OSError("broken data stream when reading image file"))

    assert outcome.reason is not None
    assert (outcome.reason.value, outcome.detail.split(":")[0]) == (
        "unreadable", "unsupported JPEG coding (arithmetic)"
    )  # fmt: skip


def test_a_real_second_export_into_the_same_folder_stops_and_the_first_finishes_whole(
    sqlite_db: Database, tmp_path: Path
) -> None:
    import json
    import subprocess

    from PIL import Image

    first_args = _busy_export(sqlite_db, tmp_path, photos=40)
    out = Path(first_args[first_args.index("--out") + 1])
    first = subprocess.Popen([*first_args, "--size", "512"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert first.stdout is not None
    assert '"event": "face"' in first.stdout.readline()  # it holds the folder and is cropping

    second = runner.invoke(app, [*first_args[3:-1], "--size", "384"])  # same library and --out
    first.communicate(timeout=300)

    assert second.exit_code == 1
    assert second.stderr.startswith(f"error: another faceset run (pid {first.pid}, started ")
    assert second.stderr.count("\n") == 1
    assert first.returncode == 0
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(records) == 40
    assert {r["size"] for r in records} == {512}
    assert {Image.open(out / r["image"]).size for r in records} == {(512, 512)}


def test_a_read_only_out_is_one_line_naming_it(sqlite_db: Database, tmp_path: Path) -> None:
    import subprocess

    originals = _jane(sqlite_db, tmp_path)
    folder = tmp_path / "shelf"
    folder.mkdir()
    if subprocess.run(["mount", "--bind", str(folder), str(folder)], check=False).returncode:
        pytest.skip("cannot bind-mount here to make a read-only folder")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
        args = ["export", "--db", sqlite_db.url, "--originals", str(originals), "-p", "Jane Doe"]

        itself = runner.invoke(app, [*args, "--out", str(folder)])
        inside = runner.invoke(app, [*args, "--out", str(folder / "jane")])
    finally:
        subprocess.run(["umount", str(folder)], check=False)

    for result, out in ((itself, folder), (inside, folder / "jane")):
        assert result.exit_code == 1
        assert result.stderr == f"error: cannot write to --out {out}: Read-only file system\n"


def test_a_jpeg_whose_header_claims_900_megapixels_is_too_large_before_decoding(
    sqlite_db: Database, tmp_path: Path
) -> None:
    import json
    import struct
    import subprocess

    lib = make_library(sqlite_db.engine, tmp_path / "library")
    jane = lib.person("Jane Doe")
    lib.photo_file("bomb.jpg", jane, size=(1920, 1440))
    photo = next(lib.originals.rglob("bomb.jpg"))
    data = bytearray(photo.read_bytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 30000, 30000)  # height, width: 2.7 GB of RGB
    photo.write_bytes(bytes(data))
    out, peak = tmp_path / "out", tmp_path / "peak-kib"
    # In a process of its own that records its own peak memory as it exits: VmHWM, the high
    # water mark of this process's memory (getrusage's ru_maxrss would carry over the parent's
    # peak through fork and exec: the whole test session's).
    wrapper = (
        "import atexit, re, runpy, sys\n"
        "peak = sys.argv.pop(1)\n"
        "def record():\n"
        "    status = open('/proc/self/status').read()\n"
        "    open(peak, 'w').write(re.search(r'VmHWM:\\s+(\\d+)', status).group(1))\n"
        "atexit.register(record)\n"
        "runpy.run_module('faceset', run_name='__main__')"
    )

    done = subprocess.run(
        [sys.executable, "-c", wrapper, str(peak), "export", "--db", sqlite_db.url,
         "--originals", str(lib.originals), "-p", "Jane Doe", "--out", str(out), "--size", "256",
         "--layout", "none", "--workers", "1", "--allow-changed"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    [problem] = json.loads((out / "report.json").read_text())["problems"]
    assert problem["reason"] == "too_large"
    assert int(peak.read_text()) < 1_000_000  # KiB: decoding it would take 2.7 GB
