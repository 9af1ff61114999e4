"""Which family a base model is, from its files alone (no torch, no weights read).

A diffusers folder says it in ``model_index.json``; a single ``.safetensors`` checkpoint by its
key names (ComfyUI's native layouts, reference sections 4.2 and 6.2); a model id by the
``model_index.json`` in the Hugging Face cache, else by the ids the catalog knows.
"""

from __future__ import annotations

import json
from pathlib import Path

from faceset.errors import ConfigError, FacesetError
from faceset.train import families, model_files

_MAX_HEADER = 100 * 1024 * 1024


def family_of(base: str) -> str | None:
    """Return the family name of ``base`` (folder, checkpoint file or model id); None: unknown.

    Returns a description (not a family name) for something faceset does not train, such as
    "Stable Diffusion 2.x" or "a LoRA, not a base model".
    """
    path = Path(base).expanduser()
    if path.is_dir():
        index = path / "model_index.json"
        if index.is_file():
            return _of_index(index)
        return _of_folder_config(path)
    if path.is_file():
        if path.suffix != ".safetensors":
            return None
        try:
            return family_of_keys(safetensors_keys(path))
        except FacesetError:
            return None  # unreadable: loading it says why, in its own words
    cached = _cached_index(base)
    if cached is not None:
        return _of_index(cached)
    for entry in families.CATALOG:
        if base.lower().rstrip("/") == entry.hub_id.lower():
            return entry.name
    return None


def family_for(base: str, wanted: str | None) -> str:
    """Return the family to train ``base`` as: ``wanted`` (``--for``) checked against what the
    model's files say, or what they say. Raises ConfigError, in one line, on a mismatch or when
    neither says."""
    found = family_of(base)
    if found is not None and found not in families.BY_NAME:
        raise ConfigError(f"base model {base} is {found}; faceset trains {_trained_families()}")
    if wanted is None:
        if found is None:
            raise ConfigError(
                f"cannot tell which model family {base} is: pass --for"
                f" ({', '.join(families.BY_NAME)})"
            )
        return found
    same = found in (None, wanted) or {found, wanted} == {"zimage", "zimage-turbo"}
    if not same:
        assert found is not None
        raise ConfigError(
            f"base model {base} is {families.info(found).label}, not"
            f" {families.info(wanted).label}; pass --for {found} (or leave --for out)"
        )
    return wanted


def _trained_families() -> str:
    return ", ".join(info.label for info in families.CATALOG)


def safetensors_keys(path: Path) -> list[str]:
    """Return the tensor names in a ``.safetensors`` file's header."""
    return list(model_files.read_header(path))


def _of_index(index: Path) -> str:
    try:
        class_name = str(json.loads(index.read_text(encoding="utf-8")).get("_class_name", ""))
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read {index}: {e}") from None
    found = families.of_pipeline(class_name)
    if found is not None:
        return found
    if "XL" in class_name and "Img2Img" not in class_name:
        return "sdxl"
    return f"a {class_name or 'pipeline of unknown class'}"


def _of_folder_config(path: Path) -> str | None:
    """A transformer folder alone (``config.json`` of a diffusers model class)."""
    config = path / "config.json"
    try:
        class_name = str(json.loads(config.read_text(encoding="utf-8")).get("_class_name", ""))
    except (OSError, ValueError):
        return None
    transformers = {
        "Flux2Transformer2DModel": "flux2-klein",
        "ZImageTransformer2DModel": "zimage",
        "QwenImageTransformer2DModel": "qwen-image",
        "FluxTransformer2DModel": "flux1",
    }
    return transformers.get(class_name)


def family_of_keys(keys: list[str]) -> str | None:
    """Return the family a checkpoint's key names say (SD ones included), a description of
    what else it is, or None."""
    names = set(keys)
    if any(
        k.startswith(("lora_", "transformer.", "diffusion_model.")) and "lora" in k for k in names
    ):
        return "a LoRA, not a base model"
    transformer = model_files.detect_family(names, model_files.strip_prefix(names))
    if transformer is not None:
        return transformer
    if any(k.startswith("conditioner.embedders.1.") for k in names):
        return "sdxl"
    if any(k.startswith("cond_stage_model.model.") for k in names):
        return "Stable Diffusion 2.x"
    if any(k.startswith("cond_stage_model.transformer.") for k in names):
        return "sd15"
    return None


def _cached_index(model_id: str) -> Path | None:
    """Return ``model_index.json`` of ``model_id`` from the Hugging Face cache, if there."""
    if model_id.count("/") != 1:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(model_id, "model_index.json")
    return Path(found) if isinstance(found, str) else None
