"""Tiny base models and LoRA files for the generation tests; nothing is downloaded.

The tiny SD 1.5/SDXL pipelines and the CLIP tokenizer are those of tests/train/conftest.py
(loaded from its file, as conftest modules are not importable by name). A LoRA file is written
the way faceset train writes one (kohya keys, true alpha, ``modelspec.*``/``ss_*`` metadata),
with random non-zero up-weights so that it visibly changes the images.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

_spec = importlib.util.spec_from_file_location(
    "faceset_tests_train_fixtures", Path(__file__).parent.parent / "train" / "conftest.py"
)
assert _spec is not None
assert _spec.loader is not None
_train = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_train)

# Re-exported so pytest registers them here too (the env vars HF_HUB_OFFLINE etc. are set above).
clip_tokenizer = _train.clip_tokenizer
sd15_base = _train.sd15_base
sdxl_base = _train.sdxl_base
tiny_sd15 = _train.tiny_sd15
tiny_sdxl = _train.tiny_sdxl
dit_bases = _train.dit_bases

SUBJECT = "ohwx man"
WriteLora = Callable[..., Path]


def write_lora(
    path: Path,
    base: Path,
    family: str = "sd15",
    *,
    seed: int = 0,
    step: int = 10,
    resolution: int = 64,
    meta: dict[str, str] | None = None,
) -> Path:
    """Write a kohya LoRA (rank 4, alpha 2) for the tiny ``base`` folder; return ``path``."""
    import torch
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from faceset.train import kohya_format
    from faceset.train.loop import UNET_TARGETS

    pipeline_class: Any = StableDiffusionXLPipeline if family == "sdxl" else StableDiffusionPipeline
    unet = pipeline_class.from_pretrained(base, local_files_only=True).unet
    torch.manual_seed(seed)
    unet.add_adapter(
        LoraConfig(r=4, lora_alpha=2, init_lora_weights="gaussian", target_modules=UNET_TARGETS)
    )
    state = get_peft_model_state_dict(unet)
    for key, tensor in state.items():
        if "lora_B" in key:  # peft starts B at zero: an untrained adapter changes nothing
            tensor.copy_(torch.randn(tensor.shape) * 0.5)
    layers = unet.config.layers_per_block if family == "sdxl" else None
    tensors = kohya_format.unet_to_kohya(state, 2.0, sgm_layers_per_block=layers)
    sdxl = family == "sdxl"
    metadata = {
        "ss_network_dim": "4",
        "ss_network_alpha": "2",
        "ss_base_model_version": "sdxl_base_v1-0" if sdxl else "sd_v1",
        "ss_output_name": path.stem,
        "ss_steps": str(step),
        "ss_training_comment": SUBJECT.split()[0],
        "modelspec.architecture": "stable-diffusion-xl-v1-base/lora"
        if sdxl
        else "stable-diffusion-v1/lora",
        "modelspec.resolution": f"{resolution}x{resolution}",
        "modelspec.trigger_phrase": SUBJECT,
    } | (meta or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    return kohya_format.save(path, tensors, metadata)


def write_run(
    out: Path, base: Path, family: str = "sd15", steps: tuple[int, ...] = (5, 10)
) -> Path:
    """Write a training output folder as faceset train lays it out; return ``out``.

    ``NAME.safetensors`` and ``training_config.json`` at the top, and per step
    ``checkpoints/step-NNNNNN/`` with ``NAME-stepNNNNNN.safetensors`` and ``state.json``.
    """
    name = "jane"
    for i, step in enumerate(steps):
        folder = out / "checkpoints" / f"step-{step:06d}"
        write_lora(folder / f"{name}-step{step:06d}.safetensors", base, family, seed=i, step=step)
        (folder / "state.json").write_text(json.dumps({"step": step, "started_at": 0.0}))
    write_lora(out / f"{name}.safetensors", base, family, seed=len(steps) - 1, step=steps[-1])
    config = {"name": name, "base": str(base), "family": family, "steps": steps[-1]}
    (out / "training_config.json").write_text(json.dumps(config))
    return out


@pytest.fixture(scope="session")
def sd15_lora(tmp_path_factory: pytest.TempPathFactory, sd15_base: Path) -> Path:
    """A LoRA for the tiny SD 1.5 base, with training_config.json naming that base beside it."""
    out = tmp_path_factory.mktemp("sd15-lora")
    (out / "training_config.json").write_text(
        json.dumps({"name": "jane", "base": str(sd15_base), "family": "sd15"})
    )
    return write_lora(out / "jane.safetensors", sd15_base)


@pytest.fixture
def make_lora() -> WriteLora:
    """Return :func:`write_lora` (conftest modules cannot be imported by name)."""
    return write_lora


@pytest.fixture
def make_run() -> Callable[..., Path]:
    """Return :func:`write_run`."""
    return write_run
