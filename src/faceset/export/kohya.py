"""kohya sd-scripts' DreamBooth layout: ``img/<repeats>_<trigger> <class>/``, ``dataset.toml``
and sample prompts; the same folder serves the bmaltais GUI, ai-toolkit and OneTrainer.

Keys follow ``kohya-ss/sd-scripts:docs/config_README-en.md`` and the schema in
``library/config_util.py``. With a dataset TOML the folder name sets neither repeats nor class,
so both are stated in it; the caption extension is stated because the CLI default is
``.caption``, not ``.txt`` (https://github.com/bmaltais/kohya_ss/issues/1370).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import tomli_w

TRAIN_DIR = "img"
"""kohya's ``--train_data_dir``: the parent of the concept folder, not the folder itself."""
MODEL_DIR = "model"
LOG_DIR = "log"
MASKS_DIR = "masks"
DATASET_TOML = "dataset.toml"
MASKED_DATASET_TOML = "dataset-masked.toml"
SAMPLE_PROMPTS = "sample_prompts.txt"
CAPTION_EXTENSION = ".txt"
# kohya caches next to the images (``<stem>_0512x0512_sd.npz``, ``<stem>_te_outputs.npz``) and
# ai-toolkit in ``_latent_cache/<stem>_<hash>.safetensors``: named after the image's stem plus
# ``_``. Our stems hold no ``_``, so everything before the first ``_`` names the owner.
METADATA_CACHE = "metadata_cache.json"
"""sd-scripts' ``cache_info`` file: image sizes and captions of the whole folder."""
CACHE_DIRS = ("_latent_cache",)
# About this many image views per epoch, as kohya users size repeats (20 images x 15).
VIEWS_PER_EPOCH = 300
MAX_DEFAULT_REPEATS = 100

_CONCEPT = re.compile(r"^(\d+)_(.+)$")


def default_repeats(images: int) -> int:
    """Return repeats that give about 300 image views per epoch (1 to 100)."""
    if images <= 0:
        return 1
    return max(1, min(MAX_DEFAULT_REPEATS, round(VIEWS_PER_EPOCH / images)))


def concept_dir(repeats: int, trigger: str, class_word: str) -> str:
    """Return the concept folder name kohya parses without a TOML: ``<repeats>_<class tokens>``."""
    return f"{repeats}_{trigger} {class_word}"


def is_concept_dir(name: str) -> bool:
    """Return whether kohya would read folder ``name`` under ``img/`` as a concept."""
    return _CONCEPT.match(name) is not None


def cache_owner(name: str) -> str | None:
    """Return the image stem a trainer cache file belongs to, or None if ``name`` is not one."""
    stem, sep, _ = name.partition("_")
    return stem if sep and stem else None


def buckets(size: int) -> dict[str, Any]:
    """Return aspect-bucket settings for square images of ``size`` pixels.

    The crops are square, so every image lands in one bucket; buckets stay on with
    ``bucket_no_upscale`` so that a smaller image is never enlarged.
    """
    return {
        "enable_bucket": True,
        "bucket_no_upscale": True,
        "min_bucket_reso": 256,
        "max_bucket_reso": max(1024, -(-2 * size // 64) * 64),
        # 64 divides SD 1.x latents and is a multiple of SDXL's 32.
        "bucket_reso_steps": 64,
    }


def dataset_toml(image_dir: Path, repeats: int, class_tokens: str, size: int) -> str:
    """Return sd-scripts' ``--dataset_config`` for one DreamBooth subset; ``image_dir`` absolute."""
    subset = {
        "image_dir": str(image_dir),
        "num_repeats": repeats,
        "class_tokens": class_tokens,
        "flip_aug": False,
    }
    header = (
        "# sd-scripts dataset config written by faceset: train with --dataset_config dataset.toml\n"
        "# (or --train_data_dir img --caption_extension .txt without it).\n"
        "# flip_aug stays off: faces are not symmetric.\n"
    )
    return header + _config(subset, size)


def masked_dataset_toml(image_dir: Path, masks_dir: Path, repeats: int, size: int) -> str:
    """Return the dataset config for ``--masked_loss``: masks as ``conditioning_data_dir``.

    A subset with ``conditioning_data_dir`` is a ControlNet-style subset in sd-scripts, whose
    schema has no ``class_tokens``; every image has a caption file, so none is needed.
    """
    subset = {
        "image_dir": str(image_dir),
        "conditioning_data_dir": str(masks_dir),
        "num_repeats": repeats,
        "flip_aug": False,
    }
    header = (
        "# sd-scripts dataset config with loss masks, written by faceset: train with\n"
        "# --dataset_config dataset-masked.toml --masked_loss (docs/masked_loss_README.md).\n"
    )
    return header + _config(subset, size)


def _config(subset: dict[str, Any], size: int) -> str:
    """Return the TOML of one dataset of square ``size`` px images holding ``subset``."""
    data = {
        "general": {
            "caption_extension": CAPTION_EXTENSION,
            "shuffle_caption": False,
            "keep_tokens": 1,
        },
        "datasets": [{"resolution": size, "batch_size": 1, **buckets(size), "subsets": [subset]}],
    }
    return tomli_w.dumps(data)


def sample_prompts(trigger: str, class_word: str, size: int, for_model: str | None) -> str:
    """Return sample prompts in sd-scripts' syntax (``--n`` negative, ``--w/--h`` size,
    ``--d`` seed, ``--s`` steps, ``--l`` CFG scale, ``--g`` FLUX guidance), one per line."""
    subject = f"{trigger} {class_word}"
    prompts = [
        f"professional headshot of {subject}, studio lighting",
        f"photo of {subject} outdoors, natural light",
        f"{subject} smiling, candid photo",
        f"portrait painting of {subject}",
    ]
    if for_model == "flux1":
        # FLUX.1 is guidance-distilled: no negative prompt or CFG, a guidance value instead.
        options = f"--w {size} --h {size} --d 42 --s 20 --g 3.5"
        return "".join(f"{p} {options}\n" for p in prompts)
    steps = 28
    options = f"--n blurry, lowres, deformed --w {size} --h {size} --d 42 --s {steps} --l 7"
    return "".join(f"{p} {options}\n" for p in prompts)
