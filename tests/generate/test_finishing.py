"""Finished headshots: the face detail pass, likeness ranking, upscale, the page, exact redraws.

A 0.4 M-parameter model draws no face, so the face machinery is tested on real photos standing
in for outputs (the astronaut Eileen Collins, Grace Hopper and the cameraman, as in
tests/evaluate), drawn by a stand-in engine; the tiny SD 1.5 model checks the real img2img,
upscale sizes and bit-exact redraws.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import shutil
import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch", reason="the train extra is not installed: pip install -e '.[train]'")

from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from faceset.generate import HeadshotsConfig, detail, headshots, rank, read_records, redraw, upscale
from faceset.generate.engine import Engine, Request, request_of
from faceset.generate.headshots import apply_detail, apply_upscale, image_size
from faceset.model import Box
from faceset.select import face_model

_spec = importlib.util.spec_from_file_location(
    "faceset_tests_evaluate_photos", Path(__file__).parent.parent / "evaluate" / "conftest.py"
)
assert _spec is not None
assert _spec.loader is not None
real = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(real)

needs_face_model = pytest.mark.skipif(
    not face_model.available(), reason="faceset[identity] (dlib, yuface) is not installed"
)


def array(image: Image.Image | Path) -> np.ndarray:
    return np.asarray(Image.open(image).convert("RGB") if isinstance(image, Path) else image)


def two_faces() -> Image.Image:
    """Two heads of the astronaut side by side: a picture of two people."""
    head = real.frame((100, 0, 400, 300), 128)(real.astronaut())
    pair = Image.new("RGB", (256, 256), (200, 200, 200))
    pair.paste(head, (0, 64))
    pair.paste(ImageOps.mirror(head), (128, 64))
    return pair


def write_export(folder: Path) -> Path:
    """faces/ and holdout/ of the astronaut, as faceset export --best writes them."""
    portrait = real.astronaut()
    for sub, edits in (("faces", real.TRAIN_EDITS), ("holdout", real.HOLDOUT_EDITS)):
        (folder / sub).mkdir(parents=True)
        for i, edit in enumerate(edits):
            edit(portrait).save(folder / sub / f"p{i}.jpg", quality=95)
    return folder


class Painter:
    """A stand-in engine drawing real photos: ``render`` picks one by seed, ``img2img`` brightens
    it a little (or, ``ruin``, blurs the face away), deterministically."""

    base, family, device, dtype = "stand-in", "sd15", "cpu", "float32"

    def __init__(self, photos: list[Image.Image], ruin: bool = False) -> None:
        self.photos = photos
        self.ruin = ruin
        self.redrawn: list[Image.Image] = []

    def use_lora(self, lora: Any) -> None:
        pass

    def render(self, request: Request, scheduler_config: Any = None) -> Image.Image:
        photo = self.photos[request.seed % len(self.photos)]
        return photo.resize((request.width, request.height), Image.Resampling.LANCZOS)

    def img2img(
        self, request: Request, image: Image.Image, strength: float, scheduler_config: Any = None
    ) -> Image.Image:
        assert image.size == (request.width, request.height)
        self.redrawn.append(image)
        if self.ruin:
            return image.filter(ImageFilter.GaussianBlur(12))
        return ImageEnhance.Brightness(image).enhance(1 + strength / 20)

    def record(self, request: Request) -> dict[str, Any]:
        return {**asdict(request), "scheduler": {"class": "-", "base_config": {}}, "lora": None,
                "base": self.base, "family": self.family, "device": "cpu", "dtype": "float32"}  # fmt: skip


@pytest.fixture(scope="module")
def engine(sd15_base: Path) -> Engine:
    return Engine(str(sd15_base), "sd15")


@pytest.fixture
def lora256(tmp_path: Path, sd15_base: Path, make_lora: Any) -> Path:
    """A LoRA trained at 256 px: the stand-in's photos are drawn at that size."""
    return make_lora(tmp_path / "lora" / "jane.safetensors", sd15_base, resolution=256)  # type: ignore[no-any-return]


# The detail pass.


def test_feather_mask_is_one_in_the_middle_and_exactly_zero_from_the_circle_out() -> None:
    mask = detail.feather_mask(100)

    assert mask[50, 50] == 1.0
    assert mask[0, 0] == mask[99, 99] == 0.0  # the corners
    assert mask[0, 50] < 0.01  # the edge's midpoint pixel, just inside the circle
    row = mask[50, 50:]
    assert np.all(np.diff(row) <= 0)  # falls smoothly outwards
    assert 0 < mask[50, 92] < 1


def test_the_face_square_is_centred_on_the_face_and_shifted_not_cut_at_the_edges() -> None:
    assert detail.face_square(Box(100, 100, 140, 150), (400, 300)) == detail.Square(70, 75, 100)
    # Near the corner: shifted inside, same size.
    assert detail.face_square(Box(0, 5, 40, 45), (400, 300)) == detail.Square(0, 0, 80)
    # Larger than the image: the shorter side.
    assert detail.face_square(Box(0, 0, 300, 300), (400, 300)).side == 300


@needs_face_model
def test_the_detail_pass_changes_pixels_only_inside_the_feathered_mask_around_the_face() -> None:
    from faceset.evaluate import encoder

    photo = real.astronaut()  # a real portrait as the "output"
    face = encoder.face_boxes(photo)[0][0]
    square = detail.face_square(face, photo.size)
    seen: list[Image.Image] = []

    def invert(crop: Image.Image) -> Image.Image:  # a redraw no one could miss
        seen.append(crop)
        return ImageOps.invert(crop)

    out = detail.detail(photo, square, 256, invert)

    changed = np.any(array(out) != array(photo), axis=2)
    mask = np.zeros(changed.shape)
    left, top, right, bottom = square.box
    mask[top:bottom, left:right] = detail.feather_mask(square.side)
    assert not changed[mask == 0].any()  # outside the mask: the exact same pixels
    assert changed[mask > 0.5].mean() > 0.99
    # The pasted region lines up with the detected face: centred on it, covering it.
    ys, xs = np.nonzero(changed)
    centre = ((face.left + face.right) / 2, (face.top + face.bottom) / 2)
    assert abs((xs.min() + xs.max()) / 2 - centre[0]) <= 2
    assert abs((ys.min() + ys.max()) / 2 - centre[1]) <= 2
    assert mask[round(centre[1]), round(centre[0])] == 1.0
    # What the model redrew is the face at the native size, in the middle of its square.
    assert seen[0].size == (256, 256)
    found = encoder.face_boxes(seen[0])[0][0]
    assert abs((found.left + found.right) / 2 - 128) < 20
    assert abs((found.top + found.bottom) / 2 - 128) < 30


def test_a_real_img2img_detail_pass_keeps_every_pixel_outside_the_mask(
    engine: Engine, sd15_lora: Path
) -> None:
    from faceset.generate import read_lora

    engine.use_lora(read_lora(sd15_lora))
    photo = real.astronaut().resize((128, 128))
    square = detail.Square(40, 8, 64)
    request = Request("photo of ohwx man", "", 3, 4, 7.0, 64, 64, "euler", 1.0)

    out = detail.detail(photo, square, 64, lambda crop: engine.img2img(request, crop, 0.6))

    changed = np.any(array(out) != array(photo), axis=2)
    mask = np.zeros(changed.shape)
    mask[8:72, 40:104] = detail.feather_mask(64)
    assert not changed[mask == 0].any()
    assert changed[mask == 1].mean() > 0.9


# Likeness.


@needs_face_model
def test_the_persons_own_photos_rank_first_and_another_person_is_rejected(tmp_path: Path) -> None:
    ref = rank.reference(write_export(tmp_path / "jane"))
    portrait = real.astronaut()
    outputs = {
        "hopper": real.grace_hopper(),
        "eileen, new look": real.NEW_EDIT(portrait),
        "blank": Image.new("RGB", (256, 256), (128, 128, 128)),
        "eileen, wide": real.frame((60, 0, 440, 380), 256)(portrait),
        "two": two_faces(),
    }

    looks = {name: rank.look(image, ref) for name, image in outputs.items()}

    assert {n: look.reject for n, look in looks.items()} == {
        "hopper": "other_person", "eileen, new look": None, "blank": "no_face",
        "eileen, wide": None, "two": "several_faces",
    }  # fmt: skip
    scored = sorted((look.likeness, n) for n, look in looks.items() if look.likeness is not None)
    assert [n for _, n in scored[::-1]][:2] == ["eileen, wide", "eileen, new look"] or [
        n for _, n in scored[::-1]
    ][:2] == ["eileen, new look", "eileen, wide"]
    assert scored[0][1] == "hopper"
    assert looks["hopper"].distance > ref.threshold > looks["eileen, new look"].distance  # type: ignore[operator]


def test_best_takes_the_best_of_every_variation_before_the_second_of_any() -> None:
    likeness = [0.90, 0.95, 0.80, 0.94, 0.93, 0.70]
    variations = [0, 0, 1, 0, 0, 1]

    assert rank.best(likeness, variations, 2) == [1, 2]  # not the three of variation 0
    assert rank.best(likeness, variations, 3) == [1, 3, 2]
    assert rank.best(likeness, variations, None) == [1, 3, 4, 0, 2, 5]


# Upscale.


def test_upscale_sizes_reach_2048_px_and_tiles_cover_the_image_with_overlap() -> None:
    assert upscale.target_size((1024, 1024), 2) == (2048, 2048)
    assert upscale.target_size((456, 576), 2) == (1621, 2048)  # 2x is not enough: to 2048
    assert upscale.target_size((64, 80), 2, min_side=0) == (128, 160)
    tiles = upscale.tiles((2048, 2560), 1024, 256)
    covered = np.zeros((2560, 2048), bool)
    for left, top, right, bottom in tiles:
        assert (right - left, bottom - top) == (1024, 1024)
        covered[top:bottom, left:right] = True
    assert covered.all()
    xs = sorted({t[0] for t in tiles})
    assert all(b - a <= 1024 - 256 for a, b in itertools.pairwise(xs))


def test_tiles_redrawn_unchanged_blend_back_to_the_plain_enlargement() -> None:
    photo = real.astronaut().resize((100, 80))

    out = upscale.upscale(photo, (250, 200), 64, 16, lambda tile, _i: tile)

    plain = photo.resize((250, 200), Image.Resampling.LANCZOS)
    assert np.abs(array(out).astype(int) - array(plain)).max() <= 1


def test_preset_aspects_at_the_native_resolution() -> None:
    assert image_size(1024, (1, 1), 16) == (1024, 1024)
    assert image_size(1024, (4, 5), 16) == (912, 1152)
    assert image_size(512, (4, 5), 8) == (456, 576)


# The whole run, and exact redraws.


@needs_face_model
def test_headshots_keep_the_person_detailed_and_upscaled_best_first_and_reject_the_rest(
    lora256: Path, tmp_path: Path
) -> None:
    portrait = real.astronaut()
    painter = Painter([
        real.NEW_EDIT(portrait), real.grace_hopper(), Image.new("RGB", (256, 256), (128, 128, 128)),
        two_faces(), real.frame((60, 0, 440, 380), 256)(portrait), real.cameraman(),
    ])  # fmt: skip
    settings = HeadshotsConfig(count=6, steps=4, best=2, upscale=2, upscale_side=0)
    export = write_export(tmp_path / "jane")

    result = headshots(
        lora256, settings, base="x", family="sd15", out=tmp_path / "shots", photos=export,
        engine=painter,  # type: ignore[arg-type]
    )  # fmt: skip

    assert result.rejected == {
        "linkedin-002-seed1.png": "other_person", "linkedin-003-seed2.png": "no_face",
        "linkedin-004-seed3.png": "several_faces", "linkedin-006-seed5.png": "other_person",
    }  # fmt: skip
    assert [p.name[:2] for p in result.best] == ["01", "02"]
    assert {p.name[3:] for p in result.best} == {"linkedin-001-seed0.jpg", "linkedin-005-seed4.jpg"}
    first = json.loads(result.best[0].with_suffix(".json").read_text())
    second = json.loads(result.best[1].with_suffix(".json").read_text())
    assert first["likeness"]["upscale"]["likeness"] >= second["likeness"]["upscale"]["likeness"]
    assert first["verdict"] == {"kept": True, "rank": 1, "reason": None}
    assert first["detail"]["applied"]
    assert first["upscale"]["applied"]
    assert set(first["likeness"]) == {"base", "detail", "upscale"}
    with Image.open(result.best[0]) as jpeg:
        assert (jpeg.format, jpeg.size, jpeg.mode) == ("JPEG", (512, 512), "RGB")
        assert not jpeg.getexif()
        assert "icc_profile" not in jpeg.info
    png = result.best[0].with_suffix(".png")
    with Image.open(png) as image:
        assert not image.info
    # The record replays the base image, the detail pass and the upscale: the same pixels.
    assert np.array_equal(array(redraw(first, painter)), array(png))  # type: ignore[arg-type]
    # The page: kept ones first, each with its score and a before toggle; then the rejected.
    text = result.page.read_text() if result.page else ""
    assert text.index("linkedin-001-seed0") < text.index("linkedin-002-seed1")
    assert text.index("linkedin-005-seed4") < text.index("other_person")
    assert text.count("before the detail pass") == 2
    assert "src='data:image/jpeg;base64," in text
    assert "src='file" not in text
    # A rejected image is drawn, detailed and recorded, but not upscaled.
    records = {r["image"]: r for r in read_records(result.out)}
    assert records["linkedin-002-seed1.png"]["upscale"]["applied"] is False


@needs_face_model
def test_a_step_that_loses_the_likeness_is_dropped_and_recorded(
    lora256: Path, tmp_path: Path
) -> None:
    painter = Painter([real.NEW_EDIT(real.astronaut())], ruin=True)

    result = headshots(
        lora256, HeadshotsConfig(count=1, steps=2), base="x", family="sd15",
        out=tmp_path / "shots", photos=write_export(tmp_path / "jane"),
        engine=painter,  # type: ignore[arg-type]
    )  # fmt: skip

    record = result.records[0]
    assert record["detail"]["applied"] is False
    assert record["detail"]["reason"].startswith("dropped")
    assert "tried" in record["detail"]
    assert np.array_equal(array(result.images[0]), array(painter.render(request_of(record))))
    assert result.best  # still kept, as drawn


def test_a_detailed_and_upscaled_image_is_redrawn_exactly_by_the_model(
    sd15_lora: Path, engine: Engine, tmp_path: Path
) -> None:
    result = headshots(
        sd15_lora, HeadshotsConfig(count=1, steps=2, seed=5, detail=False), out=tmp_path,
        engine=engine,
    )  # fmt: skip
    record = result.records[0] | {
        "detail": {"applied": True, "square": [8, 8, 40], "size": 64, "strength": 0.5,
                   "steps": 4, "crop": 2.0, "inner": 0.7},
        "upscale": {"applied": True, "factor": 2, "size": [128, 128], "tile": 64, "overlap": 16,
                    "strength": 0.3, "steps": 4},
    }  # fmt: skip
    request = request_of(record)
    detailed = apply_detail(engine, request, array_image(result.images[0]), record["detail"])
    expected = apply_upscale(engine, request, detailed, record["upscale"])

    again = redraw(record)  # a fresh engine, from the record alone

    assert again.size == (128, 128)
    assert np.array_equal(array(again), array(expected))
    assert not np.array_equal(array(detailed), array(result.images[0]))


def array_image(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


@needs_face_model
@pytest.mark.skipif(not shutil.which("chromium"), reason="Debian's chromium is not installed")
def test_the_page_renders_in_headless_chromium_with_the_kept_headshots_first(
    lora256: Path, tmp_path: Path
) -> None:
    portrait = real.astronaut()
    painter = Painter([real.NEW_EDIT(portrait), real.grace_hopper()])
    result = headshots(
        lora256, HeadshotsConfig(count=2, steps=2), base="x", family="sd15",
        out=tmp_path / "shots", photos=write_export(tmp_path / "jane"),
        engine=painter,  # type: ignore[arg-type]
    )  # fmt: skip
    assert result.page is not None
    shot = tmp_path / "shot.png"

    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         f"--screenshot={shot}", "--window-size=1200,1400", result.page.as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip

    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.int16)
    green = np.nonzero((np.abs(pixels - np.array([46, 160, 67])).sum(axis=2) < 40).any(axis=1))[0]
    red = np.nonzero((np.abs(pixels - np.array([200, 60, 50])).sum(axis=2) < 40).any(axis=1))[0]
    assert len(green) > 100  # the kept headshot's border, large
    assert len(red) > 20  # the rejected one's
    assert green.min() < red.min()  # kept first


@pytest.mark.parametrize("family", ["flux2-klein", "zimage", "qwen-image", "flux1"])
def test_every_transformer_family_redraws_through_its_img2img_pipeline(
    family: str, dit_bases: Any
) -> None:
    engine = Engine(str(dit_bases(family)), family)
    request = Request("photo of ohwx man", "", 3, 4, 3.0, 32, 32, "model", 1.0)
    image = engine.render(request)

    redrawn = engine.img2img(request, image, 0.5)

    assert redrawn.size == (32, 32)
    assert np.array_equal(array(redrawn), array(engine.img2img(request, image, 0.5)))
    assert not np.array_equal(array(redrawn), array(image))
