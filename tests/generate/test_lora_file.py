"""What a LoRA file says about itself: trigger and class, family, resolution, base model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from faceset.generate.lora_file import LoraError, base_of, read_lora


def kohya_file(path: Path, meta: dict[str, str], key: str = "lora_unet_x.lora_down.weight") -> Path:
    """Write a one-tensor safetensors file with ``meta``; no torch needed."""
    from safetensors.numpy import save_file

    save_file({key: np.zeros((2, 2), np.float32)}, str(path), meta)
    return path


def test_faceset_metadata_gives_trigger_class_family_size_and_step(tmp_path: Path) -> None:
    meta = {
        "modelspec.trigger_phrase": "ohwx woman",
        "ss_base_model_version": "sdxl_base_v1-0",
        "modelspec.resolution": "1024x1024",
        "ss_steps": "750",
        "ss_output_name": "jane",
    }

    lora = read_lora(kohya_file(tmp_path / "x.safetensors", meta))

    assert (lora.subject, lora.family, lora.resolution, lora.step, lora.name) == (
        "ohwx woman", "sdxl", 1024, 750, "jane",
    )  # fmt: skip
    assert len(lora.sha256) == 64


def test_a_transformer_lora_says_its_family_by_its_architecture(tmp_path: Path) -> None:
    meta = {"modelspec.architecture": "flux-2-klein/lora", "modelspec.trigger_phrase": "ohwx man",
            "modelspec.resolution": "1024x1024"}  # fmt: skip

    lora = read_lora(
        kohya_file(tmp_path / "k.safetensors", meta, key="transformer.x.to_q.lora_A.weight")
    )

    assert (lora.subject, lora.family, lora.resolution) == ("ohwx man", "flux2-klein", 1024)


def test_an_sd_scripts_lora_names_its_subject_by_image_folder(tmp_path: Path) -> None:
    meta = {
        "ss_dataset_dirs": json.dumps({"10_sks person": {"n_repeats": 10, "img_count": 20}}),
        "ss_base_model_version": "sd_v1",
    }

    lora = read_lora(kohya_file(tmp_path / "x.safetensors", meta))

    assert (lora.subject, lora.family, lora.resolution) == ("sks person", "sd15", None)


def test_files_that_are_not_loras_faceset_draws_with_are_refused_in_one_line(
    tmp_path: Path,
) -> None:
    diffusers_format = kohya_file(tmp_path / "d.safetensors", {}, key="unet.down.lora_A.weight")
    (tmp_path / "text.safetensors").write_text("hello")

    with pytest.raises(LoraError, match="is not a LoRA faceset can draw with"):
        read_lora(diffusers_format)
    with pytest.raises(LoraError, match="is not a safetensors file"):
        read_lora(tmp_path / "text.safetensors")
    with pytest.raises(LoraError, match="does not exist"):
        read_lora(tmp_path / "missing.safetensors")


def test_the_base_model_comes_from_the_training_config_beside_the_lora(tmp_path: Path) -> None:
    lora = read_lora(kohya_file(tmp_path / "x.safetensors", {"ss_base_model_version": "sd_v1"}))
    (tmp_path / "training_config.json").write_text(json.dumps({"base": "/models/sd15"}))

    assert base_of(lora, None, None) == ("/models/sd15", "sd15")
    assert base_of(lora, "/other", "sd15") == ("/other", "sd15")
    with pytest.raises(
        LoraError, match=re.escape("was trained on SD 1.5, not SDXL; pass --for sd15")
    ):
        base_of(lora, None, "sdxl")
