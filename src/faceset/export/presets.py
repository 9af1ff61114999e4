"""Resolution presets: ``for_model`` sets the crop size and the export defaults together."""

from __future__ import annotations

from typing import Any

from faceset.errors import ConfigError

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # SD 1.5 was trained at 512 px.
    "sd15": {"crop": {"size": 512}, "export": {"for_model": "sd15", "layout": "all"}},
    # SDXL and FLUX.1 train at 1024 px; smaller images are upscaled by the trainer or skipped.
    "sdxl": {"crop": {"size": 1024}, "export": {"for_model": "sdxl", "layout": "all"}},
    "flux": {"crop": {"size": 1024}, "export": {"for_model": "flux", "layout": "all"}},
}
RESOLUTION = {"sd15": 512, "sdxl": 1024, "flux": 1024}
"""Training resolution of each model, in pixels."""


def preset(name: str) -> dict[str, dict[str, Any]]:
    """Return the settings a model preset implies, as config sections: ``{"crop": {...},
    "export": {...}}``. Apply them under the user's own settings, which win."""
    try:
        chosen = PRESETS[name]
    except KeyError:
        raise ConfigError(
            f"no preset named {name!r}; use one of {', '.join(sorted(PRESETS))}"
        ) from None
    return {section: dict(values) for section, values in chosen.items()}
