"""``aitoolkit.yaml``: an ai-toolkit job that trains the export's transformer family as it is.

The job has the shape of ai-toolkit's own (``ostris/ai-toolkit:config/examples/*.yaml`` and the
UI's ``ui/src/app/jobs/new/jobConfig.ts``), with the values its UI sets per model
(``ui/src/app/jobs/new/options.tsx``: arch, quantised transformer and text encoder,
``timestep_type: weighted`` for klein, Z-Image and Qwen-Image, the Z-Image Turbo training adapter)
and faceset's own per-family defaults for rank, learning rate and steps (``faceset.train.families``),
so that ``python run.py aitoolkit.yaml`` and ``faceset train`` train alike.

Captions keep the literal trigger (``ohwx person, ...``), not ai-toolkit's ``[trigger]``: the
folder is the kohya concept folder, which sd-scripts, the bmaltais GUI and OneTrainer read as it
is; ai-toolkit adds ``trigger_word`` only to captions that lack it and replaces ``[trigger]``
(``toolkit/prompt_utils.py``, ``inject_trigger_into_prompt``), so a literal trigger trains the
same; and older ai-toolkit versions skipped the replacement when text embeddings are cached (the
warning in ``config/examples/train_lora_qwen_image_24gb.yaml``), which this job turns on. The
sample prompts do use ``[trigger]``, replaced by ``trigger_word`` at sampling time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from faceset.export.kohya import MODEL_DIR
from faceset.train.families import FamilyInfo, info

JOB = "aitoolkit.yaml"
ARCH = {
    # ai-toolkit names klein by size; the 9B base is "flux2_klein_9b" (options.tsx).
    "flux2-klein": "flux2_klein_4b",
    "zimage": "zimage",
    "zimage-turbo": "zimage",
    "qwen-image": "qwen_image",
    "flux1": "flux",
}
"""ai-toolkit's ``model.arch`` of each family."""
TURBO_ADAPTER = "ostris/zimage_turbo_training_adapter/zimage_turbo_training_adapter_v2.safetensors"
"""The training adapter ai-toolkit's UI sets for Z-Image Turbo (v2, its default)."""
RESOLUTIONS = (512, 768, 1024)
"""ai-toolkit trains every image at each of these sizes it is at least as big as."""
SAMPLE_EVERY = 250
SAMPLE_PROMPTS = (
    "professional headshot of [trigger] {cls}, studio lighting",
    "photo of [trigger] {cls} outdoors, natural light",
    "[trigger] {cls} smiling, candid photo",
    "portrait painting of [trigger] {cls}",
)


def job_yaml(
    root: Path,
    name: str,
    family: str,
    folder: Path,
    masks: Path | None,
    trigger: str,
    class_word: str,
    size: int,
) -> str:
    """Return the ai-toolkit job for ``family`` training on ``folder`` (images and ``.txt``
    captions) with the loss masks in ``masks`` (None: no masks), writing into ``root/model/name``.
    ``size`` is the side of the images in pixels; paths are absolute."""
    fam = info(family)
    dataset: dict[str, Any] = {
        "folder_path": str(folder),
        "caption_ext": "txt",
        "caption_dropout_rate": 0.05,
        "shuffle_tokens": False,
        # Faces are not symmetric: a mirrored face is another face.
        "flip_x": False,
        "cache_latents_to_disk": True,
        "resolution": resolutions(size),
    }
    if masks is not None:
        # The masks hold their own floor (--mask-floor) and black on other people's faces.
        dataset["mask_path"] = str(masks)
        dataset["mask_min_value"] = 0.0
    model: dict[str, Any] = {
        "name_or_path": fam.hub_id,
        "arch": ARCH[family],
        "quantize": True,
        "qtype": "qfloat8",
        "quantize_te": True,
        "qtype_te": "qfloat8",
    }
    if family == "zimage-turbo":
        model["assistant_lora_path"] = TURBO_ADAPTER
    if family != "flux1":
        model["low_vram"] = True
    process = {
        "type": "diffusion_trainer",
        "training_folder": str(root / MODEL_DIR),
        "device": "cuda:0",
        "trigger_word": trigger,
        "network": {"type": "lora", "linear": fam.rank, "linear_alpha": _number(fam.alpha)},
        "save": {
            "dtype": "bf16",
            "save_every": SAMPLE_EVERY,
            "max_step_saves_to_keep": 8,
            "save_format": "safetensors",
        },
        "datasets": [dataset],
        "train": {
            "batch_size": 1,
            "steps": fam.steps,
            "gradient_accumulation": 1,
            "train_unet": True,
            "train_text_encoder": False,
            "gradient_checkpointing": True,
            "noise_scheduler": "flowmatch",
            "timestep_type": timestep_type(family),
            "optimizer": "adamw8bit",
            "lr": fam.lr,
            "cache_text_embeddings": True,
            "dtype": "bf16",
        },
        "model": model,
        "sample": _sample(fam, class_word),
    }
    job = {
        "job": "extension",
        "config": {"name": name, "process": [process]},
        "meta": {"name": "[name]", "version": "1.0"},
    }
    header = (
        f"# ai-toolkit job written by faceset export for {fam.label}: python run.py {JOB}\n"
        "# (from ai-toolkit's folder). Set model.name_or_path to a local copy of the model if you\n"
        "# have one; captions start with the trigger itself, sample prompts use [trigger].\n"
    )
    if family == "flux2-klein":
        header += "# FLUX.2 [klein] base 9B: arch flux2_klein_9b, black-forest-labs/FLUX.2-klein-base-9B.\n"
    body: str = yaml.safe_dump(job, sort_keys=False, allow_unicode=True, width=100)
    return header + body


def timestep_type(family: str) -> str:
    """Return ai-toolkit's ``train.timestep_type`` for ``family``: ``weighted`` where its UI sets
    it (klein, Z-Image, Qwen-Image), else its default ``sigmoid`` (FLUX.1)."""
    return "sigmoid" if family == "flux1" else "weighted"


def resolutions(size: int) -> list[int]:
    """Return ai-toolkit's ``resolution`` list for square images of ``size`` pixels: the sizes
    of :data:`RESOLUTIONS` the images reach, or ``size`` alone for smaller images."""
    return [r for r in RESOLUTIONS if r <= size] or [size]


def _sample(fam: FamilyInfo, class_word: str) -> dict[str, Any]:
    guidance = fam.guidance
    if fam.name in ("zimage", "zimage-turbo"):
        # ai-toolkit's Z-Image takes standard CFG and passes the pipeline ``scale - 1``
        # (extensions_built_in/diffusion_models/z_image/z_image.py), whose CFG is
        # pos + g * (pos - neg): faceset's g is ai-toolkit's g + 1 (0, Turbo's, is 1).
        guidance += 1.0
    return {
        "sampler": "flowmatch",
        "sample_every": SAMPLE_EVERY,
        "width": fam.resolution,
        "height": fam.resolution,
        "samples": [{"prompt": p.format(cls=class_word)} for p in SAMPLE_PROMPTS],
        "neg": "",
        "seed": 42,
        "walk_seed": True,
        "guidance_scale": _number(guidance),
        # ai-toolkit's UI draws Turbo in 9 steps: 8 transformer passes in the diffusers it pins.
        "sample_steps": 9 if fam.name == "zimage-turbo" else fam.draw_steps,
    }


def _number(value: float) -> int | float:
    """Return ``value`` as an int when it is whole, so the YAML reads 32, not 32.0."""
    return int(value) if value == int(value) else value
