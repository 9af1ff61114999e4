"""report.html: one self-contained page a person reads to trust (or fix) the training set."""

from __future__ import annotations

import base64
import html
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from faceset.model import Person
from faceset.select.choose import Decision, Selection

REASONS = {
    "wrong_person": "Probably someone else (identity distance too large)",
    "duplicate": "Near-duplicate of a better photo (burst or same shot)",
    "blurry": "Blurry face",
    "exposure": "Too dark, too bright or clipped",
    "too_small": "Face too small for the training size",
    "too_old": "Older than the chosen time range",
    "partial": "Face partly outside the photo",
    "crowded": "Another face too close to crop it out",
    "no_face_found": "No face found in the box",
    "surplus": "Good, but not needed: better or more varied faces were chosen",
    "held_out": "Held out to measure likeness after training (never trained on)",
    "held_out_day": "Same day as a held-out photo (kept out so the test stays honest)",
    "stale_marker": "Face box no longer fits the file (rotated or replaced since)",
    "file_changed": "File changed since the library indexed it",
    "bad_box": "Face box outside the photo",
    "unsafe_path": "File path leaves the library folder",
    "unknown_root": "File in a library folder faceset was not given",
    "missing_file": "File not found",
    "unreadable": "File could not be read",
    "corrupt": "File is damaged and cannot be decoded",
    "error": "Unexpected error while reading the face",
}
MAX_TILES_PER_REASON = 60
"""Tiles shown per reason for leaving faces out; selection.jsonl lists every face."""


def label(reason: str | None) -> str:
    """Return the sentence a reader sees for a reason code, every code a sentence."""
    if not reason:
        return "Left out"
    return REASONS.get(reason) or reason.replace("_", " ").capitalize()


_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}
.grid{display:flex;flex-wrap:wrap;gap:10px}
.tile{width:164px;background:#fff;border:1px solid #ddd;border-radius:6px;padding:4px;font-size:12px}
.tile img{width:160px;height:160px;display:block;border-radius:4px}
.chosen{border-color:#2ea043}.rejected{border-color:#c83c32}
.muted{color:#666}.warn{background:#fff4ce;border:1px solid #e0c060;padding:8px;border-radius:6px}
table{border-collapse:collapse}td,th{padding:2px 10px;text-align:left;border-bottom:1px solid #eee}
.bar{display:inline-block;background:#4a7bd0;height:10px}
"""


def write_html(path: Path, person: Person, selection: Selection, now: datetime) -> Path:
    """Write the report and return its path; every image is embedded, so the file stands alone."""
    chosen, rejected = selection.chosen, selection.rejected
    counts = Counter(d.reason for d in rejected)
    parts = [
        f"<!doctype html><html lang=en><meta charset=utf-8><title>faceset: {_e(person.name)}</title>",
        f"<style>{_STYLE}</style><body>",
        f"<h1>Training set of {_e(person.name)}</h1>",
        f"<p>{len(selection.decisions)} faces considered, <b>{len(chosen)} chosen</b>, "
        f"{len(rejected)} left out. Generated {now:%Y-%m-%d %H:%M}.</p>",
    ]
    shortfall = selection.shortfall()
    if shortfall:  # first thing on the page: the set is smaller than asked for, and why
        parts.insert(3, f"<p class=warn><b>{_e(shortfall[0].upper() + shortfall[1:])}.</b></p>")
    parts += [f"<p class=warn>{_e(w)}</p>" for w in selection.warnings]
    parts.append("<h2>Why faces were left out</h2><table><tr><th>reason</th><th>faces</th></tr>")
    parts += [f"<tr><td>{_e(label(r))}</td><td>{n}</td></tr>" for r, n in counts.most_common()]
    parts.append("</table>")
    parts.append(_age_span(chosen, now))
    parts.append(f"<h2>Chosen ({len(chosen)})</h2><div class=grid>")
    parts += [_tile(d, selection.threshold) for d in chosen]
    parts.append("</div>")
    for reason, _ in counts.most_common():
        # Each reason folds away; a long one shows its first tiles and counts the rest.
        group = [d for d in rejected if d.reason == reason]
        parts.append(
            f"<details><summary><h2 style=display:inline>{_e(label(reason))}"
            f" ({len(group)})</h2></summary><div class=grid>"
        )
        parts += [_tile(d, selection.threshold) for d in group[:MAX_TILES_PER_REASON]]
        parts.append("</div>")
        if len(group) > MAX_TILES_PER_REASON:
            parts.append(
                f"<p class=muted>and {len(group) - MAX_TILES_PER_REASON} more, listed in"
                " selection.jsonl</p>"
            )
        parts.append("</details>")
    parts.append("</body></html>")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(parts), encoding="utf-8")
    tmp.replace(path)
    return path


def _age_span(chosen: Sequence[Decision], now: datetime) -> str:
    dates = sorted(d.face.taken_at for d in chosen if d.face.taken_at)
    if not dates:
        return "<h2>Age of the photos</h2><p class=muted>No capture dates.</p>"
    years = Counter(t.year for t in dates)
    most = max(years.values())
    rows = "".join(
        f"<tr><td>{y}</td><td><span class=bar style='width:{200 * n // most}px'></span> {n}</td></tr>"
        for y, n in sorted(years.items(), reverse=True)
    )
    age = (now - dates[0]).days / 365.25
    return (
        f"<h2>Age of the photos</h2><p>Chosen photos span {dates[0]:%Y-%m-%d} to {dates[-1]:%Y-%m-%d}"
        f" (the oldest is {age:.1f} years old).</p><table>{rows}</table>"
    )


def _tile(d: Decision, threshold: float | None) -> str:
    face = d.face
    img = ""
    if d.stats is not None:
        img = (
            f"<img alt='' src='data:image/jpeg;base64,{base64.b64encode(d.stats.thumb).decode()}'>"
        )
    lines = [
        f"{face.taken_at:%Y-%m-%d}" if face.taken_at else "no date",
        f"<span class=muted>{_e(face.file_name)}</span>",
    ]
    if d.stats is not None:
        lines.append(f"sharp {d.stats.sharpness:.0f} · face {d.stats.face_px:.0f}px")
    if d.distance is not None and threshold is not None:
        lines.append(f"identity {d.distance:.2f} / {threshold:.2f}")
    if d.chosen or d.reason == "surplus":
        lines.append(f"score {d.score:.2f}")
    if d.detail:
        lines.append(f"<span class=muted>{_e(d.detail)}</span>")
    kind = "chosen" if d.chosen else "rejected"
    return f"<div class='tile {kind}'>{img}" + "<br>".join(lines) + "</div>"


def _e(text: str) -> str:
    return html.escape(text, quote=True)
