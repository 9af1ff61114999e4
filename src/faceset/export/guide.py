"""``TRAINING.md``: which folder and flags each trainer takes, with the export's absolute paths.

The most common support thread for kohya is "No data found" from pointing ``--train_data_dir``
at the concept folder instead of its parent (https://github.com/bmaltais/kohya_ss/issues/216),
and the second is ``.txt`` captions read as ``.caption``; the guide spells both out.
"""

from __future__ import annotations

from pathlib import Path

from faceset.export import aitoolkit, diffusers, kohya, musubi
from faceset.export.config import ExportConfig
from faceset.export.presets import TRANSFORMERS

GUIDE = "TRAINING.md"
ONETRAINER_DIR = "onetrainer"
# sd-scripts and diffusers example scripts per model.
KOHYA_SCRIPT = {
    "sd15": "train_network.py",
    "sdxl": "sdxl_train_network.py",
    "flux1": "flux_train_network.py",
}
"""The model families sd-scripts trains; musubi-tuner trains the other transformers."""
DIFFUSERS_SCRIPT = {
    "sdxl": "train_dreambooth_lora_sdxl.py",
    "flux2-klein": "train_dreambooth_lora_flux2_klein.py",
    "zimage": "train_dreambooth_lora_z_image.py",
    "zimage-turbo": "train_dreambooth_lora_z_image.py",
    "qwen-image": "train_dreambooth_lora_qwen_image.py",
    "flux1": "train_dreambooth_lora_flux.py",
}


def training_guide(
    root: Path,
    person_name: str,
    count: int,
    size: int | None,
    settings: ExportConfig,
    concept: str,
    with_kohya: bool,
    with_diffusers: bool,
) -> str:
    """Return TRAINING.md for an export in ``root`` (absolute): one section per trainer."""
    subject = f"{settings.trigger} {settings.class_word}"
    lines = [
        f"# Training set: {person_name}",
        "",
        f"{count} images, {size} x {size} px; every caption starts with `{subject}`.",
        "Written by `faceset export`: a re-run rewrites these folders, so change captions through",
        "faceset's settings (faceset.toml here), not by hand.",
        "",
    ]
    if with_kohya:
        lines += _kohya(root, settings, concept)
        if settings.for_model in musubi.SCRIPTS:
            lines += _musubi(root, settings.for_model)
    if with_diffusers:
        lines += _diffusers(root, settings, subject)
    return "\n".join(lines)


def _kohya(root: Path, settings: ExportConfig, concept: str) -> list[str]:
    script = KOHYA_SCRIPT.get(settings.for_model or "sd15")
    lines = ["## kohya sd-scripts", ""]
    if script is None:
        lines += [
            f"sd-scripts does not train {settings.for_model}: use musubi-tuner or ai-toolkit below,",
            "which read the same folder. For other models:",
            "",
        ]
        script = "train_network.py"
    lines += [
        "```sh",
        f'accelerate launch {script} --dataset_config "{root}/{kohya.DATASET_TOML}" \\',
        f'  --output_dir "{root}/{kohya.MODEL_DIR}" --logging_dir "{root}/{kohya.LOG_DIR}" \\',
        f'  --sample_prompts "{root}/{kohya.SAMPLE_PROMPTS}" ...',
        "```",
        "",
        f'Without the TOML: `--train_data_dir "{root}/{kohya.TRAIN_DIR}" --caption_extension .txt`',
        "(the folder above the concept folder; the default extension is `.caption`).",
    ]
    if settings.masks:
        lines.append(
            f'Loss masks: `--dataset_config "{root}/{kohya.MASKED_DATASET_TOML}" --masked_loss`.'
        )
    lines += [
        "",
        "## bmaltais kohya_ss GUI",
        "",
        f"Image folder `{root}/{kohya.TRAIN_DIR}`, output folder `{root}/{kohya.MODEL_DIR}`,",
        f"logging folder `{root}/{kohya.LOG_DIR}`, caption extension `.txt`.",
        "",
        "## ai-toolkit",
        "",
    ]
    lines += _aitoolkit(root, settings, concept)
    lines += [
        "",
        "## OneTrainer",
        "",
        f"Concept path `{root}/{ONETRAINER_DIR}`, prompt source: text file per sample.",
    ]
    if settings.masks:
        lines.append("Masked training reads the `-masklabel.png` files there.")
    lines.append("")
    return lines


def _aitoolkit(root: Path, settings: ExportConfig, concept: str) -> list[str]:
    if settings.for_model not in TRANSFORMERS:
        lines = [
            "```yaml",
            "datasets:",
            f'  - folder_path: "{root}/{concept}"',
            '    caption_ext: "txt"',
        ]
        if settings.masks:
            lines.append(f'    mask_path: "{root}/{kohya.MASKS_DIR}"')
        return [*lines, "```"]
    return [
        "From ai-toolkit's folder:",
        "",
        "```sh",
        f'python run.py "{root}/{aitoolkit.JOB}"',
        "```",
        "",
        f"The job trains `{aitoolkit.ARCH[settings.for_model]}` from its Hugging Face id",
        "(`model.name_or_path`: put a local copy's folder there) on",
        f"`{root}/{concept}`"
        + (f" with the masks in `{root}/{kohya.MASKS_DIR}`" if settings.masks else "")
        + f", into `{root}/{kohya.MODEL_DIR}`.",
        f"Captions start with the trigger itself (`{settings.trigger}`), not ai-toolkit's `[trigger]`:",
        "kohya and OneTrainer read the same files, and ai-toolkit only adds `trigger_word` to",
        "captions that lack it. To change the trigger, export again with `--trigger`.",
    ]


def _musubi(root: Path, family: str) -> list[str]:
    lines = [
        "## musubi-tuner",
        "",
        "From musubi-tuner's folder; DIT, VAE and TEXT_ENCODER are the model's single files",
        "(musubi-tuner's docs name them per model):",
        "",
        "```sh",
        *musubi.commands(root, family, root.name),
        "```",
        "",
    ]
    if family == "zimage-turbo":
        lines += [
            f"`{musubi.TURBO_ADAPTER}` is ostris's Z-Image Turbo training adapter",
            "(ostris/zimage_turbo_training_adapter), or train on Z-Image base instead.",
            "",
        ]
    return lines


def _diffusers(root: Path, settings: ExportConfig, subject: str) -> list[str]:
    train, instance = f"{root}/{diffusers.TRAIN_DIR}", f"{root}/{diffusers.INSTANCE_DIR}"
    script = DIFFUSERS_SCRIPT.get(settings.for_model or "")
    lines = ["## diffusers", "", "```sh"]
    if script:
        # The SDXL and FLUX DreamBooth scripts read per-image captions from a dataset's column.
        lines += [
            f'accelerate launch {script} --dataset_name "{train}" \\',
            f'  --caption_column prompt --instance_prompt "{subject}" ...',
        ]
    else:
        lines += [
            f'accelerate launch train_text_to_image_lora.py --train_data_dir "{train}" \\',
            "  --caption_column text ...",
        ]
    lines += [
        f'accelerate launch {script or "train_dreambooth_lora.py"} --instance_data_dir "{instance}" \\',
        f'  --instance_prompt "{subject}" ...',
        "```",
        "",
    ]
    return lines
