"""ai-toolkit's job YAML and musubi-tuner's dataset TOML: they parse as those trainers parse them
and point at the export's real folders."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from faceset import config
from faceset.export.config import ExportConfig
from faceset.export.layouts import LayoutResult, write_layouts
from faceset.export.presets import preset

if TYPE_CHECKING:
    from conftest import FaceFolder

TRANSFORMERS = ("flux2-klein", "zimage", "zimage-turbo", "qwen-image", "flux1")
# What ai-toolkit's UI sets for each model (ostris/ai-toolkit:ui/src/app/jobs/new/options.tsx):
# arch, Hugging Face id, timestep_type; and faceset's family rank (faceset.train.families).
AITOOLKIT = {
    "flux2-klein": ("flux2_klein_4b", "black-forest-labs/FLUX.2-klein-base-4B", "weighted", 32),
    "zimage": ("zimage", "Tongyi-MAI/Z-Image", "weighted", 32),
    "zimage-turbo": ("zimage", "Tongyi-MAI/Z-Image-Turbo", "weighted", 32),
    "qwen-image": ("qwen_image", "Qwen/Qwen-Image", "weighted", 32),
    "flux1": ("flux", "black-forest-labs/FLUX.1-dev", "sigmoid", 16),
}
# ai-toolkit's sample guidance_scale is standard CFG (1 = off; its Z-Image passes scale - 1 to
# the pipeline) and FLUX.1's embedded guidance.
SAMPLE = {
    "flux2-klein": (4, 28),
    "zimage": (5, 30),
    "zimage-turbo": (1, 9),
    "qwen-image": (4, 40),
    "flux1": (3.5, 28),
}
# musubi-tuner's dataset schema (kohya-ss/musubi-tuner:src/musubi_tuner/dataset/config_utils.py,
# ConfigSanitizer, which rejects any other key): [general] and an image [[datasets]] entry.
MUSUBI_GENERAL = {
    "caption_extension": str, "batch_size": int, "num_repeats": int, "resolution": (int, list),
    "enable_bucket": bool, "bucket_no_upscale": bool,
}  # fmt: skip
MUSUBI_IMAGE_DATASET = {
    **MUSUBI_GENERAL,
    "image_directory": str, "image_jsonl_file": str, "cache_directory": str,
    "control_directory": str, "multiple_target": bool,
}  # fmt: skip
IMAGES = {".jpg", ".jpeg", ".png"}  # what ai-toolkit reads


def export(faces: FaceFolder, count: int = 3, **settings: Any) -> LayoutResult:
    settings.setdefault("for_model", "flux2-klein")
    records = faces.make(count, size=1024)
    return write_layouts(faces.out, records, ExportConfig(**settings), "Jane Doe")


def job(faces: FaceFolder) -> dict[str, Any]:
    data = yaml.safe_load((faces.out / "aitoolkit.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def process(faces: FaceFolder) -> dict[str, Any]:
    (only,) = job(faces)["config"]["process"]
    assert isinstance(only, dict)
    return only


def musubi(faces: FaceFolder) -> dict[str, Any]:
    return tomllib.loads((faces.out / "musubi_dataset.toml").read_text(encoding="utf-8"))


def stems(folder: Path, suffixes: set[str]) -> set[str]:
    return {p.stem for p in folder.iterdir() if p.suffix in suffixes}


# ai-toolkit


@pytest.mark.parametrize("family", TRANSFORMERS)
def test_aitoolkit_job_trains_the_concept_folder_with_its_captions_and_masks(
    faces: FaceFolder, family: str
) -> None:
    result = export(faces, for_model=family)

    assert result.aitoolkit_job == faces.out / "aitoolkit.yaml"
    data = job(faces)
    assert data["job"] == "extension"
    assert data["config"]["name"] == "jane"
    proc = process(faces)
    assert proc["type"] == "diffusion_trainer"
    (dataset,) = proc["datasets"]
    folder, masks = Path(dataset["folder_path"]), Path(dataset["mask_path"])
    assert folder.is_absolute()
    assert masks.is_absolute()
    assert folder == (faces.out / "img" / f"{result.repeats}_ohwx person").resolve()
    images = stems(folder, IMAGES)
    assert images == {f"pt{i:04d}-mk{i:04d}" for i in range(3)}
    assert stems(folder, {"." + dataset["caption_ext"]}) == images
    assert stems(masks, {".png"}) == images  # ai-toolkit finds a mask by the image's stem
    for stem in images:
        assert (folder / f"{stem}.txt").read_text(encoding="utf-8").startswith("ohwx person")
    assert Path(proc["training_folder"]) == (faces.out / "model").resolve()
    assert Path(proc["training_folder"]).is_dir()


@pytest.mark.parametrize("family", TRANSFORMERS)
def test_aitoolkit_job_uses_the_family_arch_model_and_timestep_sampling(
    faces: FaceFolder, family: str
) -> None:
    export(faces, for_model=family)

    proc = process(faces)
    arch, hub_id, timestep_type, rank = AITOOLKIT[family]
    assert proc["model"]["arch"] == arch
    assert proc["model"]["name_or_path"] == hub_id
    assert proc["model"]["quantize"] is True
    assert proc["train"]["timestep_type"] == timestep_type
    assert proc["train"]["noise_scheduler"] == "flowmatch"
    assert proc["train"]["optimizer"] == "adamw8bit"
    assert proc["train"]["dtype"] == "bf16"
    assert proc["train"]["gradient_checkpointing"] is True
    assert proc["network"] == {"type": "lora", "linear": rank, "linear_alpha": rank}
    guidance, steps = SAMPLE[family]
    assert (proc["sample"]["guidance_scale"], proc["sample"]["sample_steps"]) == (guidance, steps)
    assert proc["sample"]["width"] == proc["sample"]["height"] == 1024
    turbo_adapter = proc["model"].get("assistant_lora_path")
    if family == "zimage-turbo":
        assert turbo_adapter == (
            "ostris/zimage_turbo_training_adapter/zimage_turbo_training_adapter_v2.safetensors"
        )
    else:
        assert turbo_adapter is None


def test_aitoolkit_job_states_trigger_and_resolutions(faces: FaceFolder) -> None:
    result = export(faces, trigger="zqxv", class_word="woman", repeats=4)

    proc = process(faces)
    assert proc["trigger_word"] == "zqxv"
    (dataset,) = proc["datasets"]
    assert Path(dataset["folder_path"]) == (faces.out / "img" / "4_zqxv woman").resolve()
    assert result.concept_dir == faces.out / "img" / "4_zqxv woman"
    assert dataset["resolution"] == [512, 768, 1024]
    assert dataset["flip_x"] is False
    assert dataset["cache_latents_to_disk"] is True
    prompts = [s["prompt"] for s in proc["sample"]["samples"]]
    assert len(prompts) == 4
    assert all("[trigger] woman" in p for p in prompts)
    # ai-toolkit replaces [trigger] in prompts with trigger_word (toolkit/prompt_utils.py).
    assert all("zqxv woman" in p.replace("[trigger]", proc["trigger_word"]) for p in prompts)


def test_aitoolkit_resolutions_stop_at_the_image_size(faces: FaceFolder) -> None:
    records = faces.make(2, size=768)
    write_layouts(faces.out, records, ExportConfig(for_model="qwen-image"), "Jane Doe")

    (dataset,) = process(faces)["datasets"]
    assert dataset["resolution"] == [512, 768]


def test_aitoolkit_job_without_masks_has_no_mask_path(faces: FaceFolder) -> None:
    export(faces, masks=False)

    (dataset,) = process(faces)["datasets"]
    assert "mask_path" not in dataset
    assert not (faces.out / "masks").exists()


@pytest.mark.parametrize("family", ["sd15", "sdxl", None])
def test_sd_exports_write_no_transformer_configs(faces: FaceFolder, family: str | None) -> None:
    result = export(faces, for_model=family)

    assert not (faces.out / "aitoolkit.yaml").exists()
    assert not (faces.out / "musubi_dataset.toml").exists()
    assert result.aitoolkit_job is None
    assert result.musubi_dataset is None


def test_diffusers_layout_alone_writes_no_transformer_configs(faces: FaceFolder) -> None:
    result = export(faces, layout="diffusers")

    assert result.aitoolkit_job is None
    assert not (faces.out / "aitoolkit.yaml").exists()
    assert not (faces.out / "musubi_dataset.toml").exists()


# musubi-tuner


@pytest.mark.parametrize("family", ["flux2-klein", "zimage", "zimage-turbo", "qwen-image"])
def test_musubi_dataset_points_at_the_images_and_a_cache_inside_the_export(
    faces: FaceFolder, family: str
) -> None:
    result = export(faces, for_model=family, repeats=6)

    assert result.musubi_dataset == faces.out / "musubi_dataset.toml"
    data = musubi(faces)
    assert set(data) == {"general", "datasets"}
    for key, value in data["general"].items():
        assert isinstance(value, MUSUBI_GENERAL[key]), key
    (dataset,) = data["datasets"]
    for key, value in dataset.items():
        assert isinstance(value, MUSUBI_IMAGE_DATASET[key]), key
    assert data["general"]["resolution"] == [1024, 1024]
    assert data["general"]["enable_bucket"] is True
    assert data["general"]["bucket_no_upscale"] is True
    images = Path(dataset["image_directory"])
    assert images == (faces.out / "img" / "6_ohwx person").resolve()
    found = stems(images, IMAGES)
    assert found == {f"pt{i:04d}-mk{i:04d}" for i in range(3)}
    assert stems(images, {data["general"]["caption_extension"]}) == found
    assert dataset["num_repeats"] == 6
    cache = Path(dataset["cache_directory"])
    assert cache.is_absolute()
    assert cache.parent == faces.out.resolve()
    assert cache != images  # musubi wants one cache folder per dataset, not the image folder


def test_musubi_does_not_train_flux1(faces: FaceFolder) -> None:
    result = export(faces, for_model="flux1")

    assert result.musubi_dataset is None
    assert not (faces.out / "musubi_dataset.toml").exists()
    assert (faces.out / "aitoolkit.yaml").is_file()


def test_musubi_caches_of_a_replaced_crop_are_dropped(faces: FaceFolder) -> None:
    records = faces.make(2, size=1024)
    settings = ExportConfig(for_model="zimage")
    write_layouts(faces.out, records, settings, "Jane Doe")
    cache = Path(musubi(faces)["datasets"][0]["cache_directory"])
    cache.mkdir()
    for stem in ("pt0000-mk0000", "pt0001-mk0001"):
        (cache / f"{stem}_1024x1024_zi.safetensors").write_bytes(b"latent")
        (cache / f"{stem}_zi_te.safetensors").write_bytes(b"te")
    faces.write("pt0000-mk0000", size=1024, seed=99)

    result = write_layouts(faces.out, records, settings, "Jane Doe")

    assert sorted(p.name for p in cache.iterdir()) == [
        "pt0001-mk0001_1024x1024_zi.safetensors",
        "pt0001-mk0001_zi_te.safetensors",
    ]
    assert "musubi_cache/pt0000-mk0000_zi_te.safetensors" in result.removed


# bookkeeping


def test_rerun_rewrites_neither_config(faces: FaceFolder) -> None:
    records = faces.make(2, size=1024)
    settings = ExportConfig(for_model="qwen-image")
    first = write_layouts(faces.out, records, settings, "Jane Doe")
    assert {"aitoolkit.yaml", "musubi_dataset.toml"} <= set(first.written)
    before = faces.snapshot()
    (faces.out / ".faceset-layouts.digest").unlink()  # force the full comparison

    again = write_layouts(faces.out, records, settings, "Jane Doe")

    assert again.written == ()
    assert faces.snapshot() == before


def test_switching_to_sdxl_removes_both_configs_and_the_musubi_caches(faces: FaceFolder) -> None:
    records = faces.make(2, size=1024)
    write_layouts(faces.out, records, ExportConfig(for_model="flux2-klein"), "Jane Doe")
    cache = faces.out / "musubi_cache"
    cache.mkdir()
    (cache / "pt0000-mk0000_1024x1024_f2.safetensors").write_bytes(b"latent")

    result = write_layouts(faces.out, records, ExportConfig(for_model="sdxl"), "Jane Doe")

    assert {"aitoolkit.yaml", "musubi_dataset.toml"} <= set(result.removed)
    assert not (faces.out / "aitoolkit.yaml").exists()
    assert not (faces.out / "musubi_dataset.toml").exists()
    assert not cache.exists()


def test_new_family_rewrites_the_job(faces: FaceFolder) -> None:
    records = faces.make(1, size=1024)
    write_layouts(faces.out, records, ExportConfig(for_model="zimage"), "Jane Doe")

    result = write_layouts(faces.out, records, ExportConfig(for_model="qwen-image"), "Jane Doe")

    assert "aitoolkit.yaml" in result.written
    assert process(faces)["model"]["arch"] == "qwen_image"


# the guide and the model names


def test_guide_gives_the_aitoolkit_and_musubi_commands(faces: FaceFolder) -> None:
    result = export(faces, for_model="qwen-image")

    assert result.guide is not None
    text = result.guide.read_text(encoding="utf-8")
    root = faces.out.resolve()
    assert f'python run.py "{root}/aitoolkit.yaml"' in text
    config_flag = f'--dataset_config "{root}/musubi_dataset.toml"'
    assert f"qwen_image_cache_latents.py {config_flag}" in text
    assert f"qwen_image_cache_text_encoder_outputs.py {config_flag}" in text
    assert "qwen_image_train_network.py --model_version original" in text
    assert "--network_module networks.lora_qwen_image --network_dim 32 --network_alpha 32" in text
    assert "sd-scripts does not train qwen-image" in text


def test_guide_for_turbo_passes_the_training_adapter_to_musubi(faces: FaceFolder) -> None:
    result = export(faces, for_model="zimage-turbo")

    assert result.guide is not None
    text = result.guide.read_text(encoding="utf-8")
    assert "--base_weights zimage_turbo_training_adapter_v2.safetensors" in text
    assert "zimage_train_network.py" in text


@pytest.mark.parametrize("family", TRANSFORMERS)
def test_transformer_presets_crop_at_1024(family: str) -> None:
    cfg = config.load(None, preset(family), environ={})

    assert cfg.crop.size == 1024
    assert cfg.export.for_model == family


def test_flux_still_means_flux1(tmp_path: Path) -> None:
    assert ExportConfig(for_model="flux").for_model == "flux1"  # type: ignore[arg-type]
    cfg = config.load(None, {"export": {"for_model": "flux"}}, environ={})
    assert cfg.export.for_model == "flux1"
    assert cfg.crop.size == 1024
