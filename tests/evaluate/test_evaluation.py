"""faceset eval end to end on real photos, a stand-in drawing them instead of a diffusion model.

The stand-in "draws" the base model as strangers, one checkpoint as a new look at the person and
one as verbatim copies of training photos (and a blank image with no face), so every rule of the
pick is exercised against what the real encoder sees.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("torch", reason="the train extra is not installed: pip install -e '.[train]'")

from faceset.evaluate import (
    EvalConfig,
    ExportFolderError,
    FaceModelMissing,
    evaluate,
    read_export,
)
from faceset.select import face_model

needs_face_model = pytest.mark.skipif(
    not face_model.available(), reason="faceset[identity] (dlib, yuface) is not installed"
)
SETTINGS = EvalConfig(prompts=("photo of {subject}", "portrait of {subject}"), seeds=(1, 2))


def kohya_file(path: Path, step: int) -> Path:
    from safetensors.numpy import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"modelspec.trigger_phrase": "ohwx woman", "ss_base_model_version": "sd_v1",
            "ss_steps": str(step), "modelspec.resolution": "64x64"}  # fmt: skip
    save_file({"lora_unet_x.lora_down.weight": np.zeros((2, 2), np.float32)}, str(path), meta)
    return path


def write_export(folder: Path, photos: dict[str, list[Image.Image]]) -> Path:
    """An export as faceset export --best writes it: faces/, holdout/, manifest.jsonl, report."""
    lines = []
    for split, images in (("train", photos["train"]), ("holdout", photos["holdout"])):
        sub = "faces" if split == "train" else "holdout"
        for i, image in enumerate(images):
            (folder / sub).mkdir(parents=True, exist_ok=True)
            image.save(folder / sub / f"p{i}-m{i}.jpg", quality=95)
            lines.append(json.dumps({"image": f"{sub}/p{i}-m{i}.jpg", "split": split}))
    (folder / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "report.html").write_text("<!doctype html><body><h1>Training set</h1><p>…</p>")
    return folder


def write_model(folder: Path) -> Path:
    """A training output: checkpoints at steps 5 and 10, the final LoRA (step 10)."""
    for step in (5, 10):
        step_dir = folder / "checkpoints" / f"step-{step:06d}"
        kohya_file(step_dir / f"jane-step{step:06d}.safetensors", step)
        (step_dir / "state.json").write_text("{}")
    kohya_file(folder / "jane.safetensors", 10)
    (folder / "checkpoints" / "step-000015").mkdir()  # an interrupted save: no state.json
    (folder / "training_config.json").write_text(
        json.dumps({"name": "jane", "base": "/nowhere/base", "family": "sd15"})
    )
    return folder


class StandIn:
    """Draws real photos: strangers without a LoRA, per checkpoint step the given images."""

    def __init__(self, by_step: dict[int | None, list[Image.Image]]) -> None:
        self.by_step = by_step
        self.step: int | None = None
        self.requests: list[Any] = []

    def use_lora(self, lora: Any) -> None:
        self.step = None if lora is None else lora.step

    def render(self, request: Any) -> Image.Image:
        self.requests.append(request)
        images = self.by_step[self.step]
        return images[len(self.requests) % len(images)]


@pytest.fixture
def export(tmp_path: Path, photos: dict[str, list[Image.Image]]) -> Path:
    return write_export(tmp_path / "jane", photos)


@needs_face_model
def test_eval_picks_the_likeness_not_the_copies_and_says_why(
    export: Path, tmp_path: Path, photos: dict[str, list[Image.Image]]
) -> None:
    model = write_model(tmp_path / "model")
    copies = [Image.open(p).convert("RGB") for p in sorted((export / "faces").glob("*.jpg"))]
    blank = Image.new("RGB", (256, 256), (128, 128, 128))
    renderer = StandIn({
        None: photos["strangers"],
        5: photos["new"],
        10: [*copies[:3], blank],
    })  # fmt: skip

    result = evaluate(export, model, SETTINGS, renderer=renderer)

    doc = json.loads(result.json.read_text())
    rows = {row["label"]: row for row in doc["checkpoints"]}
    assert list(rows) == ["base model", "step 5", "step 10"]  # the final LoRA is step 10's
    assert doc["best"]["label"] == "step 5"
    assert result.best is not None
    assert result.best.lora is not None
    assert result.best.lora.path.name == "jane-step000005.safetensors"
    base, likeness, copying = rows["base model"], rows["step 5"], rows["step 10"]
    real = doc["baseline"]["real_vs_real"]
    assert base["sim_target"] < real - 0.05 < likeness["sim_target"]
    assert copying["sim_ref"] == pytest.approx(1.0, abs=1e-6)
    assert copying["paste"] > likeness["paste"]
    assert copying["eligible"] is False
    assert "copy of a training photo" in copying["why_not"]
    assert (copying["faces_found"], copying["faces_not_found"]) == (3, 1)
    assert copying["images"][3]["face"] is False or any(not i["face"] for i in copying["images"])
    assert likeness["diversity"] == 0  # the same picture for every seed
    assert base["eligible"] is None  # the base model is for scale, never picked
    assert doc["reason"].startswith("step 5: highest SimTarget")
    assert len(likeness["prompts"]) == 2
    assert likeness["prompts"][0]["prompt"] == "photo of ohwx woman"
    assert {r.prompt for r in renderer.requests} == {
        "photo of ohwx woman",
        "portrait of ohwx woman",
    }
    assert {(r.width, r.steps, r.guidance) for r in renderer.requests} == {(64, 30, 7.0)}
    assert len(list((model / "eval" / "step-10").glob("*.png"))) == 4


@needs_face_model
def test_eval_html_stands_alone_and_report_html_links_to_it_once(
    export: Path, tmp_path: Path, photos: dict[str, list[Image.Image]]
) -> None:
    model = write_model(tmp_path / "model")
    renderer = StandIn({None: photos["strangers"], 5: photos["new"], 10: photos["new"]})

    evaluate(export, model, SETTINGS, renderer=renderer)
    result = evaluate(export, model, SETTINGS, renderer=renderer)

    page = result.html.read_text()
    sources = re.findall(r"<img[^>]*src='([^']*)'", page)
    assert len(sources) == 4 + 3 * 4  # held-out photos, then every output
    assert all(s.startswith("data:image/jpeg;base64,") for s in sources)
    assert "Best: step 5" in page
    assert "Real-vs-real baseline" in page
    report = (export / "report.html").read_text()
    assert report.count("class=faceset-eval") == 1
    assert "href='../model/eval/eval.html'" in report


def test_an_export_without_held_out_photos_says_how_to_get_them(tmp_path: Path) -> None:
    (tmp_path / "faces").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "faces" / "a.jpg")

    with pytest.raises(
        ExportFolderError, match=r"no held-out faces \(holdout/\): export with --best N"
    ):
        read_export(tmp_path)


def test_without_the_face_model_eval_names_the_extra_to_install(
    export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(face_model, "available", lambda: False)

    with pytest.raises(FaceModelMissing, match=re.escape("pip install 'faceset[identity]'")):
        evaluate(export, write_model(tmp_path / "model"), SETTINGS, renderer=StandIn({}))


@needs_face_model
@pytest.mark.parametrize("family", ["flux2-klein", "zimage", "qwen-image", "flux1"])
def test_eval_draws_every_checkpoint_of_a_transformer_family_with_its_own_settings(
    family: str, tmp_path: Path, photos: dict[str, list[Image.Image]]
) -> None:
    """A real run: a tiny pipeline of the family, two checkpoints trained by faceset train,
    eval drawing each with the family's guidance and scheduler (the tiny model draws no face:
    the report says so, it does not fail)."""
    import dit_models
    from faceset.train import TrainConfig, families, train

    clip = None
    if family == "flux1":
        from transformers import CLIPTokenizer

        vocab = tmp_path / "clip"
        vocab.mkdir()
        import importlib.util

        spec = importlib.util.spec_from_file_location(
            "train_fixtures", Path(__file__).parent.parent / "train" / "conftest.py"
        )
        assert spec is not None
        assert spec.loader is not None
        fixtures = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(fixtures)
        fixtures._clip_vocabulary(vocab)
        clip = CLIPTokenizer(str(vocab / "vocab.json"), str(vocab / "merges.txt"),
                             pad_token="<|endoftext|>", model_max_length=77)  # fmt: skip
    base = dit_models.build(family, tmp_path / "base", clip)
    export = write_export(tmp_path / "jane", photos)
    concept = export / "img" / "1_ohwx woman"
    concept.mkdir(parents=True)
    for i, image in enumerate(photos["train"][:2]):
        image.resize((64, 64)).save(concept / f"{i}.png")
        (concept / f"{i}.txt").write_text("ohwx woman\n")
    train(TrainConfig(dataset=export, base=str(base), out=export / "model", steps=2, rank=4,
                      resolution=64, save_every=1, sample_every=0))  # fmt: skip

    result = evaluate(export, export / "model", SETTINGS)

    doc = json.loads(result.json.read_text())
    assert [row["label"] for row in doc["checkpoints"]] == ["base model", "step 1", "step 2"]
    assert doc["family"] == family
    drawn = (doc["settings"]["guidance"], doc["settings"]["sampler"], doc["settings"]["size"])
    assert drawn == (families.info(family).guidance, "model", 64)
    assert all(len(row["images"]) == 4 for row in doc["checkpoints"])
