"""Resolution presets: ``for_model`` sets the crop size and the export defaults together."""

from __future__ import annotations

from typing import Any

from faceset.errors import ConfigError

RESOLUTION = {
    # SD 1.5 was trained at 512 px.
    "sd15": 512,
    # SDXL and every transformer family train at 1024 px (../shared/reference/dit-families.md
    # section 6.1; ai-toolkit's and musubi-tuner's person recipes); smaller images are upscaled by
    # the trainer or skipped.
    "sdxl": 1024,
    "flux2-klein": 1024,
    "zimage": 1024,
    "zimage-turbo": 1024,
    "qwen-image": 1024,
    "flux1": 1024,
}
"""Training resolution of each model, in pixels."""
ALIASES = {"flux": "flux1"}
"""Old names still accepted: ``flux`` meant FLUX.1 before FLUX.2 existed."""
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    name: {"crop": {"size": size}, "export": {"for_model": name, "layout": "all"}}
    for name, size in RESOLUTION.items()
}
TRANSFORMERS = ("flux2-klein", "zimage", "zimage-turbo", "qwen-image", "flux1")
"""The flow-matching transformer families: ai-toolkit and musubi-tuner get a config of theirs."""


def model_name(name: str) -> str:
    """Return the model name ``name`` stands for: itself, or what an old alias now reads."""
    return ALIASES.get(name, name)


def preset(name: str) -> dict[str, dict[str, Any]]:
    """Return the settings a model preset implies, as config sections: ``{"crop": {...},
    "export": {...}}``. Apply them under the user's own settings, which win."""
    try:
        chosen = PRESETS[model_name(name)]
    except KeyError:
        raise ConfigError(f"no preset named {name!r}; use one of {', '.join(PRESETS)}") from None
    return {section: dict(values) for section, values in chosen.items()}
