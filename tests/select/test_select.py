"""Choosing the training set: identity, quality, duplicates, recency, variety, the report."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import ImageEnhance
from typer.testing import CliRunner

from faceset import config, pipeline
from faceset.cli import app
from faceset.demo.images import astronaut, compose, varied_photo
from faceset.select import dedupe, face_model, identity
from factories import Database, LibraryFixture, make_library

SIZE = (1600, 1200)
FACE = (600, 300, 1000, 700)
NOW = datetime(2026, 6, 15, 12, 0)
"""The runs' "now": fixed, so no test depends on the time of day (a day's photos taken
``i / 24`` days apart straddled midnight when the suite ran shortly after it)."""


@pytest.fixture(autouse=True)
def _fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "clock", lambda: NOW)


def embedding(
    centre: np.ndarray, rng: np.random.Generator, spread: float = 0.035
) -> tuple[float, ...]:
    """A FaceNet-like unit vector near ``centre``: same-person distances about 0.6-0.9."""
    v = centre + rng.normal(0, spread, centre.shape)
    return tuple(float(x) for x in v / np.linalg.norm(v))


def person_centre(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=512)
    return v / np.linalg.norm(v)


@pytest.fixture
def lib(sqlite_db: Database, tmp_path: Path) -> LibraryFixture:
    library = make_library(sqlite_db.engine, tmp_path)
    library.person("Jane Doe")
    return library


def add(lib: LibraryFixture, name: str, seed: int, days_ago: float, *, blur: float = 0.0,
        emb: tuple[float, ...] | None = None, confirmed: bool = True, face: tuple[int, int, int, int] = FACE) -> None:  # fmt: skip
    lib.photo_file(
        name, lib.people["Jane Doe"], size=SIZE, face=face, upright=varied_photo(SIZE, face, seed, blur),
        taken=NOW - timedelta(days=days_ago), embedding=emb, confirmed=confirmed,
    )  # fmt: skip


def select(
    lib: LibraryFixture, db: Database, out: Path | None, **select: Any
) -> pipeline.SelectResult:
    cfg = config.load(
        None,
        {
            "library": {"db": db.url, "originals": lib.originals},
            "select": {"face_model": "off"} | select,
            "crop": {"size": 256},
            "export": {"out": out, "workers": 1},
        },
        environ={},
    )
    return pipeline.select(cfg, "Jane Doe")


def reasons(result: pipeline.SelectResult) -> dict[str, str]:
    return {d.face.file_name: d.reason or "chosen" for d in result.selection.decisions}


def test_planted_wrong_person_is_rejected_with_its_distance(
    lib: LibraryFixture, sqlite_db: Database
) -> None:
    rng = np.random.default_rng(1)
    jane, sister = person_centre(1), person_centre(2)
    for i in range(8):
        add(lib, f"jane{i}.jpg", seed=i, days_ago=40 * i, emb=embedding(jane, rng))
    add(lib, "sister.jpg", seed=99, days_ago=3, emb=embedding(sister, rng), confirmed=False)

    result = select(lib, sqlite_db, None, best=30)

    wrong = next(d for d in result.selection.decisions if d.face.file_name == "sister.jpg")
    assert wrong.reason == "wrong_person"
    assert "identity distance" in wrong.detail
    assert sum(1 for d in result.selection.decisions if d.chosen) == 8


def test_burst_keeps_one_and_blurred_and_small_faces_go(
    lib: LibraryFixture, sqlite_db: Database
) -> None:
    for i in range(5):
        add(lib, f"day{i}.jpg", seed=i, days_ago=30 * i + 1)
    add(lib, "burst-a.jpg", seed=50, days_ago=200)
    add(lib, "burst-b.jpg", seed=50, days_ago=200 - 2 / 86400)  # the same shot two seconds later
    add(lib, "blurred.jpg", seed=60, days_ago=5, blur=8)
    add(lib, "tiny.jpg", seed=70, days_ago=6, face=(700, 500, 760, 560))

    got = reasons(select(lib, sqlite_db, None, best=30))

    assert sorted([got["burst-a.jpg"], got["burst-b.jpg"]]) == ["chosen", "duplicate"]
    assert got["blurred.jpg"] == "blurry"
    assert got["tiny.jpg"] == "too_small"
    assert all(got[f"day{i}.jpg"] == "chosen" for i in range(5))


def test_years_leaves_out_old_photos_and_old_sets_are_warned_about(
    lib: LibraryFixture, sqlite_db: Database
) -> None:
    add(lib, "new.jpg", seed=1, days_ago=30)
    for i in range(3):
        add(lib, f"old{i}.jpg", seed=10 + i, days_ago=365 * 6 + i)

    recent = reasons(select(lib, sqlite_db, None, best=10, years=5))
    everything = select(lib, sqlite_db, None, best=10)

    assert recent == {
        "new.jpg": "chosen",
        "old0.jpg": "too_old",
        "old1.jpg": "too_old",
        "old2.jpg": "too_old",
    }
    assert any("older than 3 years" in w for w in everything.selection.warnings)


def test_best_n_prefers_recent_and_spreads_over_days(
    lib: LibraryFixture, sqlite_db: Database
) -> None:
    for i in range(4):  # one busy day, long ago
        add(lib, f"party{i}.jpg", seed=100 + i, days_ago=900 + i / 24)
    for i in range(4):
        add(lib, f"recent{i}.jpg", seed=200 + i, days_ago=10 + 20 * i)

    result = select(lib, sqlite_db, None, best=5, per_day=2)

    chosen = [d.face.file_name for d in result.selection.chosen]
    assert len(chosen) == 5
    assert sum(name.startswith("recent") for name in chosen) == 4
    assert sum(name.startswith("party") for name in chosen) == 1
    assert reasons(result)["party1.jpg"] in ("surplus", "chosen")


def test_selection_is_deterministic(lib: LibraryFixture, sqlite_db: Database) -> None:
    for i in range(6):
        add(lib, f"p{i}.jpg", seed=i, days_ago=10 * i)

    first = [d.face.marker_uid for d in select(lib, sqlite_db, None, best=3).selection.chosen]
    second = [d.face.marker_uid for d in select(lib, sqlite_db, None, best=3).selection.chosen]

    assert first == second


def test_export_best_crops_only_the_chosen_and_writes_the_report(
    lib: LibraryFixture, sqlite_db: Database, tmp_path: Path
) -> None:
    for i in range(4):
        add(lib, f"p{i}.jpg", seed=i, days_ago=10 * i)
    add(lib, "blurred.jpg", seed=60, days_ago=5, blur=8)
    out = tmp_path / "out"
    cfg = config.load(
        None,
        {"library": {"db": sqlite_db.url, "originals": lib.originals}, "select": {"best": 3, "face_model": "off"},
         "crop": {"size": 256}, "export": {"out": out, "workers": 1}},
        environ={},
    )  # fmt: skip

    result = pipeline.export(cfg, "Jane Doe")

    assert result.summary.written == 3
    assert len(list((out / "faces").glob("*.jpg"))) == 3
    html = (out / "report.html").read_text()
    assert "Chosen (3)" in html
    assert "Blurry face (1)" in html
    assert "blurred.jpg" in html
    assert (out / "contact_sheet.png").stat().st_size > 10_000
    lines = [json.loads(line) for line in (out / "selection.jsonl").read_text().splitlines()]
    assert sorted(line["reason"] or "chosen" for line in lines) == [
        "blurry",
        "chosen",
        "chosen",
        "chosen",
        "surplus",
    ]
    assert json.loads((out / "report.json").read_text())["selection"]["chosen"] == 3


def test_select_explain_prints_every_face_with_its_reason(
    lib: LibraryFixture, sqlite_db: Database
) -> None:
    add(lib, "good.jpg", seed=1, days_ago=3)
    add(lib, "blurred.jpg", seed=60, days_ago=5, blur=8)
    add(lib, "good2.jpg", seed=2, days_ago=30)

    result = CliRunner().invoke(
        app, ["select", "--db", sqlite_db.url, "--originals", str(lib.originals), "-p", "Jane Doe", "--explain", "--size", "256", "--face-model", "off"],
        env={"COLUMNS": "250"},
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert "blurred.jpg" in result.stdout
    assert "sharpness" in result.stdout
    assert "Jane Doe: 3 faces -> 2 chosen; left out: 1 blurry" in result.stdout


def test_identity_centre_resists_a_large_minority_of_wrong_faces() -> None:
    rng = np.random.default_rng(0)
    jane, brother = person_centre(1), person_centre(2)
    faces = {f"j{i}": embedding(jane, rng) for i in range(20)}
    faces |= {f"b{i}": embedding(brother, rng) for i in range(8)}

    result = identity.check(faces, confirmed={f"j{i}" for i in range(5)})

    assert result is not None
    outliers = {uid for uid, d in result.distances.items() if d > result.threshold}
    assert outliers == {f"b{i}" for i in range(8)}


def test_bursts_and_identical_hashes_cluster_but_distinct_shots_do_not() -> None:
    t = datetime(2024, 1, 1, 12)
    items = [
        dedupe.Item("a", t, 0b1010 << 40),
        dedupe.Item("b", t + timedelta(seconds=3), (0b1010 << 40) ^ 0xFFFF),  # burst, 16 bits off
        dedupe.Item("c", t + timedelta(days=30), 0b1010 << 40),  # same picture, other day
        dedupe.Item("d", t + timedelta(seconds=5), 0xFFFFFFFF << 20),  # same moment, another shot
    ]

    groups = sorted(sorted(g) for g in dedupe.clusters(items, burst_seconds=10, hash_distance=8))

    assert groups == [["a", "b", "c"], ["d"]]


@pytest.mark.skipif(not shutil.which("chromium"), reason="Debian's chromium is not installed")
def test_report_renders_in_headless_chromium(
    lib: LibraryFixture, sqlite_db: Database, tmp_path: Path
) -> None:
    for i in range(3):
        add(lib, f"p{i}.jpg", seed=i, days_ago=10 * i)
    select(lib, sqlite_db, tmp_path / "out", best=2)
    shot = tmp_path / "shot.png"

    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         f"--screenshot={shot}", "--window-size=1200,900", (tmp_path / "out" / "report.html").as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip

    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.int16)
    assert pixels.std() > 20  # text and thumbnails, not a blank page
    # The green border of a chosen tile is on screen.
    green = (np.abs(pixels - np.array([46, 160, 67])).sum(axis=2) < 40).sum()
    assert green > 100


@pytest.mark.skipif(
    not face_model.available(), reason="faceset[identity] (dlib, yuface) is not installed"
)
def test_local_model_embeds_real_faces_and_finds_no_face_in_a_wrong_box(
    sqlite_db: Database, tmp_path: Path
) -> None:
    lib = make_library(sqlite_db.engine, tmp_path)
    eileen = lib.person("Jane Doe")
    portrait = astronaut()
    for i, (scale, bright) in enumerate([(2.0, 1.0), (2.5, 0.8), (2.8, 1.15), (2.2, 0.9)]):
        photo, face = compose(portrait, (1600, 1200), scale, (300 + 40 * i, 80))
        photo = ImageEnhance.Brightness(photo).enhance(bright)
        box = tuple(round(v) for v in face)
        lib.photo_file(
            f"eileen{i}.jpg",
            eileen,
            size=(1600, 1200),
            face=box,
            upright=photo,
            taken=NOW - timedelta(days=40 * i),
        )  # type: ignore[arg-type]
    photo, face = compose(portrait, (1600, 1200), 2.0, (300, 80))
    # A box on the background, as a bad automatic match would draw it.
    lib.photo_file(
        "wall.jpg",
        eileen,
        size=(1600, 1200),
        face=(1200, 700, 1500, 1000),
        upright=photo,
        taken=NOW,
    )

    result = select(lib, sqlite_db, None, best=10, face_model="on")

    got = reasons(result)
    assert got["wall.jpg"] == "no_face_found"
    # Four edits of one portrait: the same picture, so one is kept and the rest are duplicates.
    assert sorted(got[f"eileen{i}.jpg"] for i in range(4)) == [
        "chosen",
        "duplicate",
        "duplicate",
        "duplicate",
    ]
    assert result.selection.threshold is not None  # the identity check ran on local embeddings
    assert all(d.stats and d.stats.yaw is not None for d in result.selection.chosen)


def test_recent_confirmed_faces_of_other_days_are_held_out_for_evaluation(
    lib: LibraryFixture, sqlite_db: Database, tmp_path: Path
) -> None:
    for i in range(20):
        add(lib, f"p{i:02d}.jpg", seed=i, days_ago=15 * i + 1)
    add(lib, "same-day-as-p00.jpg", seed=99, days_ago=1 + 1 / 24)
    out = tmp_path / "out"
    cfg = config.load(
        None,
        {"library": {"db": sqlite_db.url, "originals": lib.originals},
         "select": {"best": 5, "face_model": "off"}, "crop": {"size": 256}, "export": {"out": out, "workers": 1}},
        environ={},
    )  # fmt: skip

    result = pipeline.export(cfg, "Jane Doe")

    assert result.selection is not None
    got = reasons(pipeline.SelectResult(result.person, result.selection))
    held = sorted(name for name, r in got.items() if r == "held_out")
    # Every other recent day, so training keeps recent photos too.
    assert held == ["p00.jpg", "p02.jpg", "p04.jpg", "p06.jpg", "p08.jpg"], sorted(got.items())
    assert got["same-day-as-p00.jpg"] == "held_out_day"
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert sorted(r["split"] for r in records) == ["holdout"] * 5 + ["train"] * 5
    assert len(list((out / "holdout").glob("*.jpg"))) == 5
    assert len(list((out / "faces").glob("*.jpg"))) == 5


def test_fewer_than_best_is_said_on_the_terminal_and_atop_the_report(
    lib: LibraryFixture, sqlite_db: Database, tmp_path: Path
) -> None:
    add(lib, "good.jpg", seed=1, days_ago=3)
    add(lib, "good2.jpg", seed=2, days_ago=30)
    add(lib, "blurred.jpg", seed=60, days_ago=5, blur=8)
    out = tmp_path / "report"

    result = CliRunner().invoke(
        app, ["select", "--db", sqlite_db.url, "--originals", str(lib.originals), "-p", "Jane Doe",
              "--best", "5", "--size", "256", "--face-model", "off", "--out", str(out)],
        env={"COLUMNS": "250"},
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    said = "chose 2 of the 5 faces asked for, from 3; the rest were left out: 1 blurry"
    assert said in " ".join(result.stderr.split())
    html = (out / "report.html").read_text()
    warning = html.index("Chose 2 of the 5 faces asked for")
    assert warning < html.index("Why faces were left out")
    assert "class=warn" in html[warning - 40 : warning]


def test_a_huge_rejection_list_folds_away_and_the_sheet_stays_small(
    lib: LibraryFixture, sqlite_db: Database, tmp_path: Path
) -> None:
    from dataclasses import replace

    from PIL import Image

    from faceset.model import Person
    from faceset.report.html import MAX_TILES_PER_REASON, write_html
    from faceset.report.sheet import MAX_TILES, write_sheet
    from faceset.select.choose import Selection

    add(lib, "good.jpg", seed=1, days_ago=3)
    add(lib, "blurred.jpg", seed=60, days_ago=5, blur=8)
    real = select(lib, sqlite_db, None, best=30).selection
    blurred = next(d for d in real.decisions if d.reason == "blurry")
    many = [replace(blurred, face=replace(blurred.face, marker_uid=f"m{i}")) for i in range(400)]
    selection = Selection([*real.chosen, *many], wanted=30)

    jane = Person(lib.people["Jane Doe"], "Jane Doe")
    page = write_html(tmp_path / "report.html", jane, selection, NOW).read_text()
    sheet = Image.open(write_sheet(tmp_path / "sheet.png", selection.decisions))

    assert "<details><summary>" in page
    assert "Blurry face (400)" in page
    assert page.count("class='tile rejected'") == MAX_TILES_PER_REASON
    assert f"and {400 - MAX_TILES_PER_REASON} more, listed in selection.jsonl" in page
    assert sheet.height <= (MAX_TILES // 8) * 190


def test_every_reason_reads_as_a_sentence_in_the_report() -> None:
    from faceset.model import Reason
    from faceset.report.html import label

    assert label("corrupt") == "File is damaged and cannot be decoded"
    assert all(label(r.value) != r.value for r in Reason)


def test_without_embeddings_the_warning_does_not_blame_the_library(
    lib: LibraryFixture, sqlite_db: Database
) -> None:
    add(lib, "good.jpg", seed=1, days_ago=3)

    warnings = select(lib, sqlite_db, None, best=30).selection.warnings

    note = next(w for w in warnings if w.startswith("no face embeddings"))
    assert "PhotoPrism" not in note  # this is a PhotoPrism database; it had none to give
    assert "pip install 'faceset[identity]'" in note


def test_explain_says_what_the_identity_column_means(
    lib: LibraryFixture, sqlite_db: Database
) -> None:
    rng = np.random.default_rng(1)
    jane = person_centre(1)
    for i in range(4):
        add(lib, f"jane{i}.jpg", seed=i, days_ago=40 * i, emb=embedding(jane, rng))

    result = CliRunner().invoke(
        app, ["select", "--db", sqlite_db.url, "--originals", str(lib.originals), "-p", "Jane Doe",
              "--explain", "--size", "256", "--face-model", "off"],
        env={"COLUMNS": "250"},
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert "Identity distance" in result.stdout
    caption = " ".join(result.stdout.split())  # the caption wraps under the table
    assert "how far the face is from the person's other faces; above" in caption
