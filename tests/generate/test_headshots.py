"""Drawing headshots with a tiny model: files, records, exact redraws, the LoRA's effect."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="the train extra is not installed: pip install -e '.[train]'")

from PIL import Image

from faceset.generate import HeadshotsConfig, LoraError, headshots, read_records, redraw
from faceset.generate.engine import Engine

WriteLora = Callable[..., Path]
FAST = {"count": 3, "steps": 2, "seed": 7}


@pytest.fixture(scope="module")
def engine(sd15_base: Path) -> Engine:
    return Engine(str(sd15_base), "sd15")


def pixels(image: Image.Image | Path) -> np.ndarray:
    return np.asarray(Image.open(image) if isinstance(image, Path) else image)


def test_headshots_write_images_records_and_a_contact_sheet(
    sd15_lora: Path, engine: Engine, tmp_path: Path
) -> None:
    result = headshots(sd15_lora, HeadshotsConfig(**FAST), out=tmp_path, engine=engine)

    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "best", "contact_sheet.png", "headshots.html", "images.jsonl",
        "linkedin-001-seed7.json", "linkedin-001-seed7.png",
        "linkedin-002-seed8.json", "linkedin-002-seed8.png",
        "linkedin-003-seed9.json", "linkedin-003-seed9.png",
    ]  # fmt: skip
    record = json.loads((tmp_path / "linkedin-002-seed8.json").read_text())
    assert record == read_records(tmp_path)[1]
    assert record["prompt"].startswith("professional corporate headshot photo of ohwx man, wearing")
    assert "blurry" in record["negative_prompt"]
    assert {k: record[k] for k in ("seed", "steps", "guidance", "width", "height", "lora_weight")} == {
        "seed": 8, "steps": 2, "guidance": 7.0, "width": 64, "height": 64, "lora_weight": 1.0,
    }  # fmt: skip
    assert record["sampler"] == "dpmpp_2m_karras"
    assert record["scheduler"]["class"] == "DPMSolverMultistepScheduler"
    assert record["lora"]["sha256"] == result.lora.sha256
    assert (record["base"], record["family"], record["device"], record["dtype"]) == (
        engine.base, "sd15", "cpu", "float32",
    )  # fmt: skip
    with Image.open(result.images[0]) as image:
        assert image.size == (64, 64)
        assert not image.getexif()
        assert not image.info
    with Image.open(result.sheet) as sheet:
        assert sheet.width == 3 * 256


def test_any_image_is_drawn_again_exactly_from_its_record(
    sd15_lora: Path, engine: Engine, tmp_path: Path
) -> None:
    settings = HeadshotsConfig(**FAST, lora_weight=0.8, sampler="euler_a")
    result = headshots(sd15_lora, settings, out=tmp_path, engine=engine)
    record = json.loads((tmp_path / "linkedin-003-seed9.json").read_text())

    again = redraw(record)  # a fresh engine, from the record alone

    assert np.array_equal(pixels(again), pixels(result.images[2]))
    unweighted = redraw({**record, "lora_weight": 0.0}, engine)
    assert not np.array_equal(pixels(unweighted), pixels(result.images[2]))


def test_the_lora_changes_the_images(sd15_lora: Path, engine: Engine, tmp_path: Path) -> None:
    with_lora = headshots(sd15_lora, HeadshotsConfig(**FAST), out=tmp_path / "a", engine=engine)
    record = read_records(with_lora.out)[0]

    engine.use_lora(None)
    without = redraw({**record, "lora": None}, engine)

    assert np.abs(pixels(without).astype(int) - pixels(with_lora.images[0])).mean() > 1


def test_a_changed_lora_is_refused_rather_than_drawn_differently(
    sd15_lora: Path, engine: Engine, tmp_path: Path
) -> None:
    headshots(sd15_lora, HeadshotsConfig(**FAST), out=tmp_path, engine=engine)
    record = read_records(tmp_path)[0]

    with pytest.raises(LoraError, match="changed since the image was drawn"):
        redraw({**record, "lora": {**record["lora"], "sha256": "0" * 64}}, engine)


def test_a_smaller_second_run_leaves_no_stale_images(
    sd15_lora: Path, engine: Engine, tmp_path: Path
) -> None:
    headshots(sd15_lora, HeadshotsConfig(**FAST), out=tmp_path, engine=engine)

    headshots(sd15_lora, HeadshotsConfig(**(FAST | {"count": 1})), out=tmp_path, engine=engine)

    assert sorted(p.name for p in tmp_path.glob("linkedin-*")) == [
        "linkedin-001-seed7.json", "linkedin-001-seed7.png",
    ]  # fmt: skip
    assert len(read_records(tmp_path)) == 1


def test_sdxl_loras_with_sgm_names_draw_on_an_sdxl_base(
    sdxl_base: Path, make_lora: WriteLora, tmp_path: Path
) -> None:
    lora = make_lora(tmp_path / "xl.safetensors", sdxl_base, "sdxl")

    result = headshots(
        lora, HeadshotsConfig(count=1, steps=2), base=str(sdxl_base), out=tmp_path / "shots"
    )

    record = result.records[0]
    assert (record["family"], record["width"], record["guidance"]) == ("sdxl", 64, 6.0)
    assert np.array_equal(pixels(redraw(record)), pixels(result.images[0]))
