"""The diffusers layout: an imagefolder with ``metadata.jsonl``, and an images-only folder.

``train/metadata.jsonl`` serves ``train_text_to_image_lora.py --train_data_dir`` (reads
``text``) and the SDXL DreamBooth scripts' ``--dataset_name`` with ``--caption_column prompt``.
``file_name`` is a bare name next to the jsonl (https://github.com/huggingface/diffusers/issues/3674)
and the file sits under ``train/``, which every ``datasets`` version reads
(https://github.com/huggingface/datasets/issues/6442). DreamBooth's ``--instance_data_dir``
opens every entry as an image, so it gets a folder of images alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

DIFFUSERS_DIR = "diffusers"
TRAIN_DIR = "diffusers/train"
INSTANCE_DIR = "diffusers/instance"
METADATA = "metadata.jsonl"


def metadata_jsonl(entries: Iterable[tuple[str, str]]) -> str:
    """Return ``metadata.jsonl`` for ``(file name, caption)`` pairs, one JSON object a line."""
    return "".join(
        json.dumps({"file_name": name, "text": text, "prompt": text}, ensure_ascii=False) + "\n"
        for name, text in entries
    )
