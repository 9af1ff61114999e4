"""headshots.html: the kept headshots first, large, then the rejected ones with their reason.

One self-contained page (every image embedded as a JPEG data URI, as eval.html and report.html
do), no script: each kept headshot has a checkbox that shows it as it was before the detail pass
(pure CSS), its likeness, prompt and seed.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from faceset.generate.rank import REASONS

HTML = "headshots.html"
LARGE = 768
"""Long side of a kept headshot on the page, in pixels (the files themselves are full size)."""
SMALL = 192


@dataclass(frozen=True, slots=True)
class Card:
    """One headshot on the page."""

    name: str
    image: Image.Image
    before: Image.Image | None
    """The image before the detail pass, when the pass was kept."""
    prompt: str
    seed: int
    likeness: float | None
    steps: str
    """What was done to it, in words ("detail, upscale 2048x2048")."""
    reason: str | None = None
    """Why it is not kept: a key of rank.REASONS."""
    rank: int | None = None


_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}.muted{color:#666}
.kept{display:flex;flex-wrap:wrap;gap:16px}
.card{background:#fff;border:3px solid #2ea043;border-radius:8px;padding:6px;max-width:780px}
.card img{display:block;max-width:100%;height:auto}
.card .before{display:none}.card input:checked~.after{display:none}
.card input:checked~.before{display:block}
.score{font-size:18px;font-weight:600}
.grid{display:flex;flex-wrap:wrap;gap:8px}
.tile{width:200px;background:#fff;border:2px solid #c83c32;border-radius:6px;padding:3px;font-size:12px}
.tile img{width:100%;height:auto;display:block}
"""


def page(
    subject: str, preset: str, summary: str, kept: Sequence[Card], rejected: Sequence[Card]
) -> str:
    """Return headshots.html: ``kept`` large in their order, then ``rejected`` small."""
    parts = [
        f"<!doctype html><html lang=en><meta charset=utf-8><title>faceset headshots: {_e(subject)}</title>",
        f"<style>{_STYLE}</style><body>",
        f"<h1>Headshots of {_e(subject)} ({_e(preset)})</h1>",
        f"<p class=muted>{_e(summary)}</p>",
        f"<h2>Kept ({len(kept)})</h2><div class=kept>",
    ]
    for card in kept:
        toggle = ""
        if card.before is not None:
            toggle = (
                f"<input type=checkbox id='b-{_e(card.name)}'>"
                f"<label for='b-{_e(card.name)}'> before the detail pass</label>"
            )
        before = "" if card.before is None else _img(card.before, LARGE, "before")
        parts.append(
            f"<div class=card id='{_e(card.name)}'><div class=score>#{card.rank} · likeness"
            f" {_n(card.likeness)}</div>{toggle}{_img(card.image, LARGE, 'after')}{before}"
            f"<div>{_e(card.name)} · seed {card.seed} · {_e(card.steps)}</div>"
            f"<div class=muted>{_e(card.prompt)}</div></div>"
        )
    parts.append(f"</div><h2>Not kept ({len(rejected)})</h2><div class=grid>")
    for card in rejected:
        reason = REASONS.get(card.reason or "", card.reason or "")
        parts.append(
            f"<div class=tile id='{_e(card.name)}'>{_img(card.image, SMALL, '')}"
            f"<b>{_e(card.reason or '')}</b>: {_e(reason)}<br>{_e(card.name)} · seed {card.seed}"
            f" · likeness {_n(card.likeness)}</div>"
        )
    parts.append("</div></body></html>")
    return "\n".join(parts)


def write(out: Path, text: str) -> Path:
    """Write the page to ``out/headshots.html`` atomically; return its path."""
    path = out / HTML
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def _img(image: Image.Image, side: int, css: str) -> str:
    small = image.convert("RGB")
    if max(small.size) > side:
        small = small.copy()
        small.thumbnail((side, side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    small.save(buffer, "JPEG", quality=88)
    data = base64.b64encode(buffer.getvalue()).decode()
    return f"<img class='{css}' alt='' src='data:image/jpeg;base64,{data}'>"


def _n(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _e(text: str) -> str:
    return html.escape(text, quote=True)
