"""The export as a trainer user gets it: layouts from the CLI, reproduced from faceset.toml."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import toml
import yaml
from typer.testing import CliRunner

from faceset.cli import app
from factories import Database, make_library


def _tree(root: Path, skip: tuple[str, ...]) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(".") and p.name not in skip
    }


def test_export_writes_kohya_and_diffusers_layouts_and_reproduces_from_its_toml(
    sqlite_db: Database, tmp_path: Path
) -> None:
    lib = make_library(sqlite_db.engine, tmp_path / "lib")
    jane = lib.person("Jane Doe")
    for i, orientation in enumerate((1, 6, 3)):
        lib.photo_file(f"{i}.jpg", jane, orientation=orientation)
    out = tmp_path / "out"
    runner = CliRunner()

    first = runner.invoke(app, [
        "export", "--db", sqlite_db.url, "--originals", str(lib.originals), "-p", "Jane Doe",
        "--out", str(out), "--for", "sd15", "--trigger", "ohwx", "--class", "woman", "--size", "256",
    ])  # fmt: skip

    assert first.exit_code == 0, first.output
    concept = next((out / "img").iterdir())
    assert concept.name.endswith("_ohwx woman")
    captions = sorted(concept.glob("*.txt"))
    assert len(captions) == 3
    assert all(c.read_text().startswith("ohwx woman") for c in captions)
    dataset = toml.loads((out / "dataset.toml").read_text())
    assert dataset["general"]["caption_extension"] == ".txt"
    assert dataset["datasets"][0]["resolution"] == 256  # --size wins over the preset's 512
    assert dataset["datasets"][0]["subsets"][0]["flip_aug"] is False
    lines = [
        json.loads(line)
        for line in (out / "diffusers" / "train" / "metadata.jsonl").read_text().splitlines()
    ]
    assert {line["text"] for line in lines} == {c.read_text().strip() for c in captions}
    settings = toml.loads((out / "faceset.toml").read_text())
    assert settings["export"]["class_word"] == "woman"
    assert "password" not in (out / "faceset.toml").read_text()

    again = runner.invoke(
        app,
        [
            "export",
            "--config",
            str(out / "faceset.toml"),
            "-p",
            "Jane Doe",
            "--out",
            str(tmp_path / "again"),
        ],
    )

    assert again.exit_code == 0, again.output
    # Everything but the files that name their own folder or the time is byte-for-byte the same.
    skip = ("report.json", "dataset.toml", "dataset-masked.toml", "TRAINING.md", "faceset.toml")
    assert _tree(tmp_path / "again", skip) == _tree(out, skip)


def test_rerun_with_nothing_new_touches_no_layout_file(sqlite_db: Database, tmp_path: Path) -> None:
    lib = make_library(sqlite_db.engine, tmp_path / "lib")
    jane = lib.person("Jane Doe")
    for i in range(3):
        lib.photo_file(f"{i}.jpg", jane)
    out = tmp_path / "out"
    args = [
        "export",
        "--db",
        sqlite_db.url,
        "--originals",
        str(lib.originals),
        "-p",
        "Jane Doe",
        "--out",
        str(out),
        "--size",
        "256",
    ]
    assert CliRunner().invoke(app, args).exit_code == 0
    stamps = {
        p: p.stat().st_mtime_ns
        for p in out.rglob("*")
        # report.json, the manifest and the lock (which run holds the folder) are per run
        if p.is_file() and p.name not in ("report.json", "manifest.jsonl", ".faceset.lock")
    }

    again = CliRunner().invoke(app, [*args, "--json"])

    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout.splitlines()[-1])["kept"] == 3
    touched = [p for p, t in stamps.items() if p.stat().st_mtime_ns != t]
    assert touched == [out / "faceset.toml"] or touched == []


def test_export_for_a_transformer_writes_trainer_configs_over_its_folders(
    sqlite_db: Database, tmp_path: Path
) -> None:
    lib = make_library(sqlite_db.engine, tmp_path / "lib")
    jane = lib.person("Jane Doe")
    for i in range(2):
        lib.photo_file(f"{i}.jpg", jane)
    out = tmp_path / "out"

    result = CliRunner().invoke(app, [
        "export", "--db", sqlite_db.url, "--originals", str(lib.originals), "-p", "Jane Doe",
        "--out", str(out), "--for", "zimage", "--trigger", "zqxv", "--size", "256",
    ])  # fmt: skip

    assert result.exit_code == 0, result.output
    (process,) = yaml.safe_load((out / "aitoolkit.yaml").read_text())["config"]["process"]
    (dataset,) = process["datasets"]
    folder = Path(dataset["folder_path"])
    assert folder == next((out / "img").iterdir()).resolve()
    assert len(list(folder.glob("*.jpg"))) == 2
    assert all(c.read_text().startswith("zqxv person") for c in folder.glob("*.txt"))
    assert len(list(Path(dataset["mask_path"]).glob("*.png"))) == 2
    assert dataset["resolution"] == [256]  # --size wins over the preset's 1024
    assert process["trigger_word"] == "zqxv"
    assert process["model"]["arch"] == "zimage"
    musubi = tomllib.loads((out / "musubi_dataset.toml").read_text())
    assert Path(musubi["datasets"][0]["image_directory"]) == folder
    assert "python run.py" in (out / "TRAINING.md").read_text()


def test_its_toml_reproduces_the_set_from_any_folder_without_the_person(
    sqlite_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = make_library(sqlite_db.engine, tmp_path / "lib")
    jane = lib.person("Jane Doe")
    lib.person("Janet Dough")
    for i in range(2):
        lib.photo_file(f"{i}.jpg", jane)
    monkeypatch.chdir(tmp_path)  # the first export is given paths relative to here
    first = CliRunner().invoke(app, [
        "export", "--db", "sqlite:///storage/index.db", "--originals", "lib/originals",
        "-p", "Jane Doe", "--out", "out", "--size", "256", "--layout", "none",
    ])  # fmt: skip
    assert first.exit_code == 0, first.output
    settings = toml.loads((tmp_path / "out" / "faceset.toml").read_text())
    assert settings["person"] == {"uid": jane, "name": "Jane Doe"}
    assert settings["library"]["db"] == f"sqlite:///{tmp_path / 'storage' / 'index.db'}"
    assert settings["library"]["originals"] == str(tmp_path / "lib" / "originals")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    again = CliRunner().invoke(
        app, ["export", "--config", str(tmp_path / "out" / "faceset.toml"), "--out", "again"]
    )

    assert again.exit_code == 0, again.output
    skip = ("report.json", "faceset.toml")
    assert _tree(elsewhere / "again", skip) == _tree(tmp_path / "out", skip)


def test_the_manifest_names_the_originals_folder(sqlite_db: Database, tmp_path: Path) -> None:
    lib = make_library(sqlite_db.engine, tmp_path / "lib")
    lib.photo_file("a.jpg", lib.person("Jane Doe"))

    CliRunner().invoke(app, ["export", "--db", sqlite_db.url, "--originals", str(lib.originals),
                             "-p", "Jane Doe", "--out", str(tmp_path / "o"), "--size", "256"])  # fmt: skip

    [line] = (tmp_path / "o" / "manifest.jsonl").read_text().splitlines()
    assert json.loads(line)["source"] == {"root": "originals", "path": "a.jpg"}
