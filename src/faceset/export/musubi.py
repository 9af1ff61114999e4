"""``musubi_dataset.toml``: musubi-tuner's ``--dataset_config`` over the export's images.

Keys follow ``kohya-ss/musubi-tuner:docs/dataset_config.md`` and the schema in
``src/musubi_tuner/dataset/config_utils.py`` (``ConfigSanitizer``, which rejects unknown keys).
The images and ``.txt`` captions are the kohya concept folder's; the caches go to
``musubi_cache/`` in the export, named ``<stem>_<W>x<H>_<arch>.safetensors`` and
``<stem>_<arch>_te.safetensors`` (``dataset/image_video_dataset.py``): keyed by file name like
kohya's, so the export deletes those of changed images. musubi-tuner trains FLUX.2 (klein),
Z-Image and Qwen-Image, and of FLUX.1 only Kontext: no FLUX.1 [dev] config is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import tomli_w

from faceset.export.kohya import CAPTION_EXTENSION, MODEL_DIR
from faceset.train.families import info

DATASET_TOML = "musubi_dataset.toml"
CACHE_DIR = "musubi_cache"
TURBO_ADAPTER = "zimage_turbo_training_adapter_v2.safetensors"
"""ostris/zimage_turbo_training_adapter's file, given to musubi-tuner as ``--base_weights``."""


@dataclass(frozen=True, slots=True)
class Scripts:
    """How musubi-tuner trains one family (its ``docs/<family>.md``)."""

    prefix: str
    """Script names are ``<prefix>_cache_latents.py``, ``<prefix>_train_network.py``, ..."""
    network_module: str
    sampling: str
    """Timestep sampling flags of the doc's example."""
    version: str | None = None
    """``--model_version``, which the klein and Qwen-Image scripts need."""
    te_batch: int = 16


SCRIPTS = {
    "flux2-klein": Scripts(
        "flux_2", "networks.lora_flux_2", "--timestep_sampling flux2_shift --weighting_scheme none",
        "klein-base-4b",
    ),
    "zimage": Scripts(
        "zimage", "networks.lora_zimage",
        "--timestep_sampling shift --weighting_scheme none --discrete_flow_shift 2.0",
    ),
    "zimage-turbo": Scripts(
        "zimage", "networks.lora_zimage",
        "--timestep_sampling shift --weighting_scheme none --discrete_flow_shift 2.0",
    ),
    "qwen-image": Scripts(
        "qwen_image", "networks.lora_qwen_image",
        "--timestep_sampling shift --weighting_scheme none --discrete_flow_shift 2.2",
        "original", te_batch=1,
    ),
}  # fmt: skip
"""The families musubi-tuner trains."""


def dataset_toml(image_dir: Path, cache_dir: Path, repeats: int, resolution: int) -> str:
    """Return musubi-tuner's dataset config for the images and captions in ``image_dir``,
    trained at ``resolution`` px square, caches in ``cache_dir``; paths absolute."""
    data = {
        "general": {
            "resolution": [resolution, resolution],
            "caption_extension": CAPTION_EXTENSION,
            "batch_size": 1,
            "enable_bucket": True,
            "bucket_no_upscale": True,
        },
        "datasets": [
            {
                "image_directory": str(image_dir),
                "cache_directory": str(cache_dir),
                "num_repeats": repeats,
            }
        ],
    }
    header = (
        "# musubi-tuner dataset config written by faceset export: --dataset_config\n"
        f"# {DATASET_TOML} for the cache and train scripts (TRAINING.md has the commands).\n"
    )
    return header + tomli_w.dumps(data)


def commands(root: Path, family: str, name: str) -> list[str]:
    """Return the shell lines that cache and train ``family`` on the export in ``root``
    (absolute), writing ``root/model/<name>.safetensors``."""
    s, fam = SCRIPTS[family], info(family)
    config = f'--dataset_config "{root}/{DATASET_TOML}"'
    version = f" --model_version {s.version}" if s.version else ""
    base = f" --base_weights {TURBO_ADAPTER}" if family == "zimage-turbo" else ""
    return [
        f"python src/musubi_tuner/{s.prefix}_cache_latents.py {config} --vae VAE{version}",
        f"python src/musubi_tuner/{s.prefix}_cache_text_encoder_outputs.py {config} \\",
        f"  --text_encoder TEXT_ENCODER --batch_size {s.te_batch}{version}",
        "accelerate launch --num_cpu_threads_per_process 1 --mixed_precision bf16 \\",
        f"  src/musubi_tuner/{s.prefix}_train_network.py{version} {config} \\",
        f"  --dit DIT --vae VAE --text_encoder TEXT_ENCODER{base} \\",
        f"  --sdpa --mixed_precision bf16 {s.sampling} \\",
        f"  --optimizer_type adamw8bit --learning_rate {fam.lr:g} --gradient_checkpointing \\",
        f"  --network_module {s.network_module} --network_dim {fam.rank}"
        f" --network_alpha {fam.alpha:g} \\",
        f"  --max_train_steps {fam.steps} --save_every_n_steps 250 --seed 42 \\",
        f'  --output_dir "{root}/{MODEL_DIR}" --output_name "{name}"',
    ]
