"""Trainer layouts over the crops: kohya, OneTrainer, ai-toolkit and diffusers read them as they are."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import toml
from PIL import Image

from faceset import config
from faceset.errors import ConfigError
from faceset.export.config import ExportConfig
from faceset.export.layouts import LayoutResult, write_layouts
from faceset.export.settings_file import write_settings
from faceset.export.tokens import find_bpe_file

if TYPE_CHECKING:
    from conftest import FaceFolder

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}  # what sd-scripts' glob_images reads

# sd-scripts' dataset config schema (kohya-ss/sd-scripts:library/config_util.py, ConfigSanitizer):
# keys allowed in [general], in [[datasets]] and in a DreamBooth or ControlNet subset, with types.
SUBSET_ASCENDABLE = {
    "color_aug": bool, "face_crop_aug_range": list, "flip_aug": bool, "num_repeats": int,
    "random_crop": bool, "shuffle_caption": bool, "keep_tokens": int,
    "keep_tokens_separator": str, "secondary_separator": str, "enable_wildcard": bool,
    "token_warmup_min": int, "token_warmup_step": (float, int), "caption_prefix": str,
    "caption_suffix": str, "caption_dropout_every_n_epochs": int,
    "caption_dropout_rate": (float, int), "caption_tag_dropout_rate": (float, int),
}  # fmt: skip
DB_SUBSET_ASCENDABLE = {"caption_extension": str, "class_tokens": str, "cache_info": bool}
DB_SUBSET = {**SUBSET_ASCENDABLE, **DB_SUBSET_ASCENDABLE, "image_dir": str, "is_reg": bool}
CN_SUBSET_ASCENDABLE = {"caption_extension": str, "cache_info": bool}
CN_SUBSET = {**SUBSET_ASCENDABLE, **CN_SUBSET_ASCENDABLE, "image_dir": str, "conditioning_data_dir": str}  # fmt: skip
DATASET_ASCENDABLE = {
    "batch_size": int, "bucket_no_upscale": bool, "bucket_reso_steps": int, "enable_bucket": bool,
    "max_bucket_reso": int, "min_bucket_reso": int, "resolution": int, "network_multiplier": float,
}  # fmt: skip
GENERAL = {
    **DATASET_ASCENDABLE,
    **SUBSET_ASCENDABLE,
    **DB_SUBSET_ASCENDABLE,
    **CN_SUBSET_ASCENDABLE,
}


def layouts(faces: FaceFolder, records: list[dict[str, Any]], **settings: Any) -> LayoutResult:
    return write_layouts(faces.out, records, ExportConfig(**settings), "Jane Doe")


def check_schema(table: dict[str, Any], schema: dict[str, Any], where: str) -> None:
    for key, value in table.items():
        assert key in schema, f"{where}: {key} is not an sd-scripts key"
        assert isinstance(value, schema[key]), f"{where}: {key} = {value!r}"


def concept_dir(faces: FaceFolder) -> Path:
    (folder,) = (faces.out / "img").iterdir()
    return folder


# kohya / bmaltais / ai-toolkit / OneTrainer


def test_every_kohya_image_has_a_one_line_caption_starting_with_the_trigger(
    faces: FaceFolder,
) -> None:
    layouts(faces, faces.make(4))

    folder = concept_dir(faces)
    images = sorted(p for p in folder.iterdir() if p.suffix in IMAGE_EXTENSIONS)
    captions = sorted(p for p in folder.iterdir() if p.suffix == ".txt")
    assert len(images) == 4
    assert [p.stem for p in captions] == [p.stem for p in images]  # no orphans either way
    for path in captions:
        text = path.read_text(encoding="utf-8")
        assert text.endswith("\n")
        assert text.count("\n") == 1
        assert text.startswith("ohwx person")
    assert all("_" not in p.stem for p in images)


def test_concept_folder_states_repeats_trigger_and_class(faces: FaceFolder) -> None:
    result = layouts(faces, faces.make(3), trigger="zqxv", class_word="woman", repeats=7)

    assert concept_dir(faces).name == "7_zqxv woman"
    assert result.concept_dir == faces.out / "img" / "7_zqxv woman"
    assert result.train_data_dir == faces.out / "img"
    assert (faces.out / "model").is_dir()
    assert (faces.out / "log").is_dir()


def test_default_repeats_give_about_300_views_per_epoch(faces: FaceFolder) -> None:
    result = layouts(faces, faces.make(20))

    assert result.repeats == 15
    assert concept_dir(faces).name == "15_ohwx person"


def test_images_are_hard_links_to_the_crops(faces: FaceFolder) -> None:
    records = faces.make(1)
    layouts(faces, records)

    source = faces.out / records[0]["image"]
    for copy in (
        concept_dir(faces) / source.name,
        faces.out / "onetrainer" / source.name,
        faces.out / "diffusers" / "train" / source.name,
        faces.out / "diffusers" / "instance" / source.name,
    ):
        assert os.path.samefile(source, copy)


def test_stems_with_underscores_become_dashes(faces: FaceFolder) -> None:
    records = [faces.record(faces.write("pt_1-mk_1")), faces.record(faces.write("pt-1-mk-1"))]
    layouts(faces, records)

    names = sorted(p.name for p in concept_dir(faces).iterdir())
    assert names == ["pt-1-mk-1-2.jpg", "pt-1-mk-1-2.txt", "pt-1-mk-1.jpg", "pt-1-mk-1.txt"]


def test_dataset_toml_holds_only_documented_sd_scripts_keys(faces: FaceFolder) -> None:
    result = layouts(faces, faces.make(3), repeats=12)

    assert result.dataset_toml is not None
    data = toml.load(result.dataset_toml)  # the parser sd-scripts uses
    assert set(data) == {"general", "datasets"}
    check_schema(data["general"], GENERAL, "general")
    (dataset,) = data["datasets"]
    check_schema(
        {k: v for k, v in dataset.items() if k != "subsets"}, DATASET_ASCENDABLE, "datasets"
    )
    (subset,) = dataset["subsets"]
    check_schema(subset, DB_SUBSET, "subset")
    assert data["general"]["caption_extension"] == ".txt"
    assert dataset["resolution"] == 512
    assert dataset["min_bucket_reso"] <= 512 <= dataset["max_bucket_reso"]
    assert subset["num_repeats"] == 12
    assert subset["class_tokens"] == "ohwx person"
    assert subset["flip_aug"] is False
    assert Path(subset["image_dir"]).is_absolute()
    assert Path(subset["image_dir"]) == concept_dir(faces).resolve()


def test_masked_dataset_toml_is_a_controlnet_style_subset_with_one_mask_per_image(
    faces: FaceFolder,
) -> None:
    result = layouts(faces, faces.make(3))

    assert result.masked_dataset_toml is not None
    data = toml.load(result.masked_dataset_toml)
    check_schema(data["general"], GENERAL, "general")
    (subset,) = data["datasets"][0]["subsets"]
    # A subset with conditioning_data_dir is a ControlNet subset: class_tokens would be refused.
    check_schema(subset, CN_SUBSET, "subset")
    masks = Path(subset["conditioning_data_dir"])
    images = Path(subset["image_dir"])
    assert sorted(p.stem for p in masks.iterdir()) == sorted(
        p.stem for p in images.iterdir() if p.suffix in IMAGE_EXTENSIONS
    )


def test_sample_prompts_use_kohya_syntax_at_the_image_size(faces: FaceFolder) -> None:
    result = layouts(faces, faces.make(2, size=640))

    assert result.sample_prompts is not None
    lines = result.sample_prompts.read_text(encoding="utf-8").splitlines()
    assert lines
    for line in lines:
        prompt, _, options = line.partition(" --")
        assert "ohwx person" in prompt
        assert "w 640 --h 640 --d 42" in options


def test_flux_sample_prompts_use_guidance_not_negative_prompts(faces: FaceFolder) -> None:
    result = layouts(faces, faces.make(1, size=1024), for_model="flux1")

    assert result.sample_prompts is not None
    text = result.sample_prompts.read_text()
    assert "--g 3.5" in text
    assert "--n " not in text
    assert "--l " not in text


def test_onetrainer_folder_pairs_images_captions_and_masklabels(faces: FaceFolder) -> None:
    layouts(faces, faces.make(2))

    folder = faces.out / "onetrainer"
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        "pt0000-mk0000-masklabel.png", "pt0000-mk0000.jpg", "pt0000-mk0000.txt",
        "pt0001-mk0001-masklabel.png", "pt0001-mk0001.jpg", "pt0001-mk0001.txt",
    ]  # fmt: skip


def test_kohya_folder_holds_no_mask_png_that_kohya_would_train_on(faces: FaceFolder) -> None:
    layouts(faces, faces.make(2))

    assert not list(concept_dir(faces).glob("*.png"))


# diffusers


def test_diffusers_layout_loads_with_the_datasets_imagefolder_loader(
    faces: FaceFolder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    datasets = pytest.importorskip("datasets")
    result = layouts(faces, faces.make(3, labels=["outdoor"]))
    assert result.diffusers_train_dir is not None

    # As train_text_to_image_lora.py loads --train_data_dir.
    train = datasets.load_dataset(
        "imagefolder",
        data_files={"train": str(result.diffusers_train_dir / "**")},
        cache_dir=str(tmp_path / "hf"),
        split="train",
    )

    assert len(train) == 3
    assert {"image", "text", "prompt"} <= set(train.column_names)
    for row in train:
        assert row["text"] == "ohwx person, outdoors, 2010s photo"
        assert row["prompt"] == row["text"]
        assert row["image"].size == (512, 512)


def test_dreambooth_instance_folder_holds_images_only(faces: FaceFolder) -> None:
    result = layouts(faces, faces.make(3))

    assert result.diffusers_instance_dir is not None
    files = list(result.diffusers_instance_dir.iterdir())
    assert len(files) == 3
    for path in files:
        with Image.open(path) as im:
            im.verify()


def test_layout_kohya_writes_no_diffusers_folder(faces: FaceFolder) -> None:
    result = layouts(faces, faces.make(1), layout="kohya")

    assert not (faces.out / "diffusers").exists()
    assert result.diffusers_train_dir is None
    assert (faces.out / "dataset.toml").is_file()


def test_layout_diffusers_writes_no_kohya_folder(faces: FaceFolder) -> None:
    layouts(faces, faces.make(1), layout="diffusers")

    assert not (faces.out / "img").exists()
    assert not (faces.out / "dataset.toml").exists()
    assert (faces.out / "diffusers" / "train" / "metadata.jsonl").is_file()


# masks


def mask_of(faces: FaceFolder, stem: str) -> np.ndarray[Any, Any]:
    with Image.open(faces.out / "masks" / f"{stem}.png") as im:
        assert im.mode == "L"
        return np.asarray(im)


def test_mask_is_white_on_the_face_floor_elsewhere_black_on_other_faces(
    faces: FaceFolder,
) -> None:
    records = faces.make(1, others=[list(faces.OTHER)])
    layouts(faces, records)

    mask = mask_of(faces, "pt0000-mk0000")
    scale = 512 / 1024
    fx, fy = (
        (faces.FACE[0] + faces.FACE[2]) / 2 * scale,
        (faces.FACE[1] + faces.FACE[3]) / 2 * scale,
    )
    ox, oy = (
        (faces.OTHER[0] + faces.OTHER[2]) / 2 * scale,
        (faces.OTHER[1] + faces.OTHER[3]) / 2 * scale,
    )
    assert mask.shape == (512, 512)
    assert mask[round(fy), round(fx)] == 255
    assert mask[round(fy) - 70, round(fx)] == 255  # hair above the face box
    assert mask[500, round(fx)] == 255  # shoulders below it
    assert mask[10, 10] == round(0.2 * 255)
    assert mask[round(oy), round(ox)] == 0


def test_mask_floor_is_configurable(faces: FaceFolder) -> None:
    layouts(faces, faces.make(1), mask_floor=0.1)

    assert mask_of(faces, "pt0000-mk0000")[10, 10] == round(0.1 * 255)


def test_new_mask_floor_redraws_the_masks(faces: FaceFolder) -> None:
    records = faces.make(1)
    layouts(faces, records)

    result = layouts(faces, records, mask_floor=0.5)

    assert "masks/pt0000-mk0000.png" in result.written
    assert mask_of(faces, "pt0000-mk0000")[10, 10] == round(0.5 * 255)


def test_deleted_mask_is_drawn_again(faces: FaceFolder) -> None:
    records = faces.make(1)
    layouts(faces, records)
    (faces.out / "masks" / "pt0000-mk0000.png").unlink()

    result = layouts(faces, records)

    assert result.written == ("masks/pt0000-mk0000.png",)
    assert mask_of(faces, "pt0000-mk0000").shape == (512, 512)


def test_masks_have_the_size_of_their_image(faces: FaceFolder) -> None:
    records = [*faces.make(2), faces.record(faces.write("big", size=768))]
    result = layouts(faces, records)

    assert mask_of(faces, "big").shape == (768, 768)
    assert mask_of(faces, "pt0000-mk0000").shape == (512, 512)
    assert any("not 512x512" in w for w in result.warnings)


def test_onetrainer_masklabel_equals_the_kohya_mask(faces: FaceFolder) -> None:
    layouts(faces, faces.make(1, others=[list(faces.OTHER)]))

    assert (faces.out / "onetrainer" / "pt0000-mk0000-masklabel.png").read_bytes() == (
        faces.out / "masks" / "pt0000-mk0000.png"
    ).read_bytes()


def test_record_without_a_face_box_gets_a_white_mask(faces: FaceFolder) -> None:
    result = layouts(faces, faces.make(1, box=None))

    assert (mask_of(faces, "pt0000-mk0000") == 255).all()
    assert any("no face box" in w for w in result.warnings)


def test_masks_off_writes_none_and_removes_earlier_ones(faces: FaceFolder) -> None:
    records = faces.make(2)
    layouts(faces, records)

    result = layouts(faces, records, masks=False)

    assert not (faces.out / "masks").exists()
    assert not list((faces.out / "onetrainer").glob("*-masklabel.png"))
    assert not (faces.out / "dataset-masked.toml").exists()
    assert result.masks_dir is None
    assert "masks/pt0000-mk0000.png" in result.removed


# re-runs


def test_second_run_writes_nothing_and_leaves_every_byte(faces: FaceFolder) -> None:
    records = faces.make(3, others=[list(faces.OTHER)], labels=["glasses"])
    layouts(faces, records)
    before = faces.snapshot()

    result = layouts(faces, records)

    assert result.written == ()
    assert result.removed == ()
    assert faces.snapshot() == before


def test_rerun_from_the_written_faceset_toml_reproduces_every_byte(faces: FaceFolder) -> None:
    records = faces.make(3, labels=["indoors"])
    settings = {
        "out": str(faces.out),
        "trigger": "zqxv",
        "class_word": "man",
        "repeats": 9,
        "caption_template": "{trigger} {class}, {setting}, taken in {year}",
        "mask_floor": 0.1,
        "for_model": "sd15",
    }
    cfg = config.load(None, {"export": settings}, environ={})
    write_settings(faces.out, cfg.model_dump(mode="json"))
    write_layouts(faces.out, records, cfg.export, "Jane Doe")
    before = faces.snapshot()
    for rel in before:
        if rel != "faceset.toml":
            (faces.out / rel).unlink()

    again = config.load(faces.out / "faceset.toml", environ={})
    write_layouts(faces.out, records, again.export, "Jane Doe")

    assert again == cfg
    assert faces.snapshot() == before


def test_removed_image_leaves_every_layout_with_its_caches(faces: FaceFolder) -> None:
    records = faces.make(3)
    layouts(faces, records, repeats=10)
    folder = concept_dir(faces)
    for stem in ("pt0000-mk0000", "pt0002-mk0002"):
        (folder / f"{stem}_0512x0512_sd.npz").write_bytes(b"latents")
        (folder / f"{stem}_te_outputs.npz").write_bytes(b"te")
    (folder / "_latent_cache").mkdir()
    (folder / "_latent_cache" / "pt0002-mk0002_abc.safetensors").write_bytes(b"x")
    (folder / "metadata_cache.json").write_text("{}")

    result = layouts(faces, records[:2], repeats=10)

    left = {p.relative_to(faces.out).as_posix() for p in faces.out.rglob("*") if p.is_file()}
    assert not [p for p in left if "pt0002" in p and not p.startswith("faces/")]
    assert (folder / "pt0000-mk0000_0512x0512_sd.npz").is_file()  # unchanged image keeps its cache
    assert (folder / "pt0000-mk0000_te_outputs.npz").is_file()
    assert not (folder / "metadata_cache.json").exists()  # lists the removed image
    assert not (folder / "_latent_cache").exists()
    assert "img/10_ohwx person/pt0002-mk0002_te_outputs.npz" in result.removed
    assert "diffusers/train/pt0002-mk0002.jpg" in result.removed
    metadata = (faces.out / "diffusers" / "train" / "metadata.jsonl").read_text()
    assert "pt0002" not in metadata


def test_replaced_crop_is_linked_again_and_its_caches_dropped(faces: FaceFolder) -> None:
    records = faces.make(2)
    layouts(faces, records)
    folder = concept_dir(faces)
    for stem in ("pt0000-mk0000", "pt0001-mk0001"):
        (folder / f"{stem}_0512x0512_sd.npz").write_bytes(b"latents")
    faces.write("pt0000-mk0000", seed=99)  # the crop stage replaces files atomically

    result = layouts(faces, records)

    assert os.path.samefile(faces.out / "faces" / "pt0000-mk0000.jpg", folder / "pt0000-mk0000.jpg")
    assert f"img/{folder.name}/pt0000-mk0000.jpg" in result.written
    assert not (folder / "pt0000-mk0000_0512x0512_sd.npz").exists()
    assert (folder / "pt0001-mk0001_0512x0512_sd.npz").is_file()


def test_changed_caption_drops_the_text_encoder_cache(faces: FaceFolder) -> None:
    records = faces.make(1)
    layouts(faces, records)
    folder = concept_dir(faces)
    (folder / "pt0000-mk0000_te_outputs.npz").write_bytes(b"te")

    layouts(faces, records, caption_template="{trigger} {class}, taken in {year}")

    assert (folder / "pt0000-mk0000.txt").read_text() == "ohwx person, taken in 2019\n"
    assert not (folder / "pt0000-mk0000_te_outputs.npz").exists()


def test_crop_rewritten_in_place_drops_its_caches(faces: FaceFolder) -> None:
    records = faces.make(1)
    layouts(faces, records)
    folder = concept_dir(faces)
    (folder / "pt0000-mk0000_0512x0512_sd.npz").write_bytes(b"latents")
    source = faces.out / records[0]["image"]
    with Image.open(source) as im:
        edited = im.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    edited.save(source, "JPEG")  # same inode: the hard link in img/ changes with it

    result = layouts(faces, records)

    assert f"img/{folder.name}/pt0000-mk0000.jpg" in result.written
    assert not (folder / "pt0000-mk0000_0512x0512_sd.npz").exists()


def test_new_repeats_rename_the_concept_folder_and_keep_caches(faces: FaceFolder) -> None:
    records = faces.make(3)
    layouts(faces, records, repeats=10)
    old = concept_dir(faces)
    (old / "pt0000-mk0000_0512x0512_sd.npz").write_bytes(b"latents")

    layouts(faces, records, repeats=4)

    assert [p.name for p in (faces.out / "img").iterdir()] == ["4_ohwx person"]
    assert (faces.out / "img" / "4_ohwx person" / "pt0000-mk0000_0512x0512_sd.npz").is_file()
    data = toml.load(faces.out / "dataset.toml")
    assert data["datasets"][0]["subsets"][0]["num_repeats"] == 4


def test_switching_to_diffusers_removes_kohya_files_but_keeps_trained_models(
    faces: FaceFolder,
) -> None:
    records = faces.make(2)
    layouts(faces, records)
    (faces.out / "model" / "jane.safetensors").write_bytes(b"lora")
    (concept_dir(faces) / "pt0000-mk0000_0512x0512_sd.npz").write_bytes(b"latents")

    layouts(faces, records, layout="diffusers")

    for gone in ("img", "masks", "onetrainer", "dataset.toml", "sample_prompts.txt"):
        assert not (faces.out / gone).exists(), gone
    assert (faces.out / "model" / "jane.safetensors").read_bytes() == b"lora"
    assert (faces.out / "diffusers" / "train" / "metadata.jsonl").is_file()


def test_no_images_removes_the_layouts(faces: FaceFolder) -> None:
    layouts(faces, faces.make(2))

    result = layouts(faces, [])

    assert result.images == 0
    assert not (faces.out / "img").exists()
    assert not (faces.out / "diffusers").exists()
    assert any("no images" in w for w in result.warnings)


def test_files_faceset_did_not_write_are_kept_with_a_warning(faces: FaceFolder) -> None:
    records = faces.make(1)
    folder = layouts(faces, records).concept_dir
    assert folder is not None
    (folder / "extra.jpg").write_bytes(b"mine")
    (faces.out / "img" / "1_person").mkdir()

    result = layouts(faces, records)

    assert (folder / "extra.jpg").read_bytes() == b"mine"
    assert any("extra.jpg" in w and "did not write" in w for w in result.warnings)
    assert any("1_person" in w for w in result.warnings)


def test_missing_image_is_left_out_with_a_warning(faces: FaceFolder) -> None:
    records = faces.make(2)
    (faces.out / records[1]["image"]).unlink()

    result = layouts(faces, records)

    assert result.images == 1
    assert any("not on disk" in w for w in result.warnings)


def test_record_outside_faces_is_refused(faces: FaceFolder) -> None:
    result = layouts(faces, [faces.record("../elsewhere.jpg")])

    assert result.images == 0
    assert any("not under faces/" in w for w in result.warnings)


def test_unknown_placeholder_is_a_config_error_naming_it(faces: FaceFolder) -> None:
    with pytest.raises(ConfigError, match=r"\{mood\}"):
        config.load(None, {"export": {"caption_template": "{trigger} {class}, {mood}"}}, environ={})


def test_trigger_that_splits_into_clip_tokens_is_a_warning(faces: FaceFolder) -> None:
    if find_bpe_file() is None:
        pytest.skip("CLIP's BPE ships in open-clip-torch, which is not installed")
    result = layouts(faces, faces.make(1), trigger="zwx")

    assert any("2 CLIP tokens" in w for w in result.warnings)


def test_trigger_with_a_comma_is_refused() -> None:
    # Given as --trigger: the message names the flag.
    with pytest.raises(ConfigError, match=r"^--trigger: "):
        config.load(None, {"export": {"trigger": "ohwx, man"}}, environ={})


def test_sdxl_set_of_small_images_warns(faces: FaceFolder) -> None:
    result = layouts(faces, faces.make(1), for_model="sdxl")

    assert any("sdxl trains at 1024" in w for w in result.warnings)


# the guide


def test_guide_points_kohya_at_the_parent_of_the_concept_folder(faces: FaceFolder) -> None:
    result = layouts(faces, faces.make(1))

    assert result.guide is not None
    text = result.guide.read_text(encoding="utf-8")
    root = faces.out.resolve()
    assert f'--train_data_dir "{root}/img" --caption_extension .txt' in text
    assert f'--dataset_config "{root}/dataset.toml"' in text
    assert f'folder_path: "{root}/img/100_ohwx person"' in text
    assert f'--instance_data_dir "{root}/diffusers/instance"' in text


def test_guide_names_the_sdxl_scripts(faces: FaceFolder) -> None:
    result = layouts(faces, faces.make(1, size=1024), for_model="sdxl")

    assert result.guide is not None
    text = result.guide.read_text(encoding="utf-8")
    assert "sdxl_train_network.py" in text
    assert "train_dreambooth_lora_sdxl.py" in text
