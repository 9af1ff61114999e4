"""A PNG contact sheet: chosen faces first, then rejected ones grouped by reason."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from faceset.select.choose import Decision

TILE = 160
LABEL = 30
COLUMNS = 8
CHOSEN_COLOUR = (46, 160, 67)
REJECTED_COLOUR = (200, 60, 50)


MAX_TILES = 96
"""At most this many tiles (12 rows, 1280x2280 px): every chosen face first, then the left-out
ones until the sheet is full; report.html and selection.jsonl hold the rest."""


def write_sheet(path: Path, decisions: Sequence[Decision]) -> Path:
    """Write the contact sheet of ``decisions`` (already in report order) and return its path."""
    shown = [d for d in decisions if d.stats is not None]
    chosen = [d for d in shown if d.chosen]
    tiles = (
        chosen[:MAX_TILES] + [d for d in shown if not d.chosen][: max(0, MAX_TILES - len(chosen))]
    )
    rows = max(1, -(-len(tiles) // COLUMNS))
    sheet = Image.new("RGB", (COLUMNS * TILE, rows * (TILE + LABEL)), (250, 250, 250))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=12)
    for i, d in enumerate(tiles):
        assert d.stats is not None
        x, y = (i % COLUMNS) * TILE, (i // COLUMNS) * (TILE + LABEL)
        thumb = Image.open(io.BytesIO(d.stats.thumb)).convert("RGB").resize((TILE, TILE))
        sheet.paste(thumb, (x, y))
        colour = CHOSEN_COLOUR if d.chosen else REJECTED_COLOUR
        draw.rectangle((x, y, x + TILE - 1, y + TILE - 1), outline=colour, width=3)
        when = f"{d.face.taken_at:%Y-%m-%d}" if d.face.taken_at else "no date"
        draw.text(
            (x + 4, y + TILE + 2),
            "chosen" if d.chosen else (d.reason or ""),
            fill=colour,
            font=font,
        )
        draw.text((x + 4, y + TILE + 15), when, fill=(60, 60, 60), font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    sheet.save(tmp, "PNG")
    tmp.replace(path)
    return path
