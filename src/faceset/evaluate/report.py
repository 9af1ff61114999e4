"""eval.json and eval.html: the numbers per checkpoint, the pick and why, the images themselves.

eval.html stands alone (every thumbnail embedded) and is linked from the dataset's report.html,
so the page a person reads to trust the training set also leads to how the LoRA turned out.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from faceset.evaluate import encoder, metrics
from faceset.evaluate.candidates import Candidate
from faceset.evaluate.config import EvalConfig
from faceset.evaluate.photos import RealPhotos
from faceset.generate.prompts import fill
from faceset.redaction import redact

if TYPE_CHECKING:
    from faceset.evaluate.evaluation import Row

JSON = "eval.json"
HTML = "eval.html"
SELECT_REPORT = "report.html"
_LINK = re.compile(r"<p class=faceset-eval>.*?</p>\n?", re.DOTALL)
THUMB = 128


@dataclass(frozen=True, slots=True)
class Context:
    """What was evaluated, against what, and how."""

    export: Path
    model: Path
    base: str
    family: str
    subject: str
    settings: EvalConfig
    size: int
    guidance: float
    negative: str
    photos: RealPhotos
    missing: dict[str, list[str]]
    baseline: metrics.Baseline


def rules(settings: EvalConfig, baseline: metrics.Baseline) -> str:
    """Return the picking rules in words, with this person's numbers."""
    limit = baseline.real_paste + settings.max_copying * (baseline.copy_paste - baseline.real_paste)
    return (
        f"The checkpoint with the highest SimTarget is picked among those that show a face in at"
        f" least {settings.min_faces:.0%} of their outputs (an output without a face is a"
        f" failure, not a low score) and whose Paste stays at most {settings.max_copying:.0%} of"
        f" the way from a real new photo's ({baseline.real_paste:.3f}) to a verbatim copy of a"
        f" training photo's ({baseline.copy_paste:.3f}), that is Paste <= {limit:.3f}. These"
        " thresholds are faceset's choices, not field standards (eval.min_faces,"
        " eval.max_copying)."
    )


def document(
    context: Context, rows: list[Row], choice: metrics.Choice, trained: list[Row]
) -> dict[str, Any]:
    """Return eval.json's content."""
    b = context.baseline
    s = context.settings
    why_not = {trained[i].candidate.label: why for i, why in choice.why_not.items()}
    best = None if choice.index is None else trained[choice.index].candidate
    return {
        "export": str(context.export),
        "model": str(context.model),
        "base": context.base,
        "family": context.family,
        "subject": context.subject,
        "encoder": {"name": encoder.NAME, "similarity": "cosine"},
        "settings": s.model_dump(mode="json")
        | {"size": context.size, "guidance": context.guidance, "negative": context.negative},
        "photos": {
            "train": len(context.photos.train),
            "holdout": len(context.photos.holdout),
            "no_face": context.missing,
        },
        "baseline": {
            "real_vs_real": _r(b.real_vs_real),
            "real_paste": _r(b.real_paste),
            "copy_paste": _r(b.copy_paste),
            "train_faces": b.train,
            "holdout_faces": b.holdout,
        },
        "rules": rules(s, b),
        "checkpoints": [_row(context, row, why_not.get(row.candidate.label)) for row in rows],
        "best": None
        if best is None
        else {
            "label": best.label,
            "step": best.step,
            "lora": None if best.lora is None else str(best.lora.path),
        },
        "reason": choice.reason,
        "not_measured": "CLIP-T (prompt adherence) needs a CLIP image model, which faceset does"
        " not download; judge it from the images.",
    }


def _row(context: Context, row: Row, why_not: str | None) -> dict[str, Any]:
    s = row.summary
    assert s is not None
    lora = row.candidate.lora
    prompts = [fill(p, context.subject) for p in context.settings.prompts]
    return {
        "label": row.candidate.label,
        "step": row.candidate.step,
        "lora": None if lora is None else str(lora.path),
        "sha256": None if lora is None else lora.sha256,
        **_summary(s),
        "eligible": None if lora is None else why_not is None,
        "why_not": why_not,
        "prompts": [
            {"prompt": prompt, **_summary(p)}
            for prompt, p in zip(prompts, row.per_prompt, strict=True)
        ],
        "images": [
            {
                "file": str(o.file.relative_to(o.file.parent.parent)),
                "prompt": o.prompt_index + 1,
                "seed": o.seed,
                "face": o.score is not None,
                "sim_target": None if o.score is None else _r(o.score.sim_target),
                "sim_ref": None if o.score is None else _r(o.score.sim_ref),
                "nearest_train": None
                if o.score is None
                else str(context.photos.train[o.score.nearest].name),
            }
            for o in row.outputs
        ],
    }


def _summary(s: metrics.Summary) -> dict[str, Any]:
    return {
        "outputs": s.outputs,
        "faces_found": s.found,
        "faces_not_found": s.outputs - s.found,
        "sim_target": _r(s.sim_target),
        "sim_ref": _r(s.sim_ref),
        "paste": _r(s.paste),
        "ratio_to_baseline": _r(s.ratio),
        "copying": _r(s.copying),
        "diversity": _r(s.diversity),
    }


def _r(value: float | None) -> float | None:
    """Return ``value`` rounded for reading, None for missing or infinite (JSON has no inf)."""
    if value is None or not math.isfinite(value):
        return None
    return round(value, 4)


def write(out: Path, context: Context, doc: dict[str, Any], rows: list[Row]) -> tuple[Path, Path]:
    """Write eval.json and eval.html into ``out``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    doc = redact(doc)
    json_path = _write_text(out / JSON, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    html_path = _write_text(out / HTML, page(context, doc, rows))
    return json_path, html_path


_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}
table{border-collapse:collapse}td,th{padding:3px 10px;text-align:right;border-bottom:1px solid #eee}
td:first-child,th:first-child{text-align:left}
.best{background:#e6f4ea;font-weight:600}.no{color:#c83c32}.muted{color:#666}
.grid{display:flex;flex-wrap:wrap;gap:6px}
.tile{width:132px;background:#fff;border:2px solid #2ea043;border-radius:6px;padding:2px;font-size:11px}
.tile.noface{border-color:#c83c32}.tile img{width:128px;height:128px;display:block}
.real{border-color:#4a7bd0}
.box{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px 12px;max-width:70em}
"""


def page(context: Context, doc: dict[str, Any], rows: list[Row]) -> str:
    """Return eval.html: one self-contained page."""
    b = doc["baseline"]
    best = doc["best"]
    parts = [
        f"<!doctype html><html lang=en><meta charset=utf-8><title>faceset eval: {_e(context.subject)}</title>",
        f"<style>{_STYLE}</style><body>",
        f"<h1>Does the LoRA look like the person? ({_e(context.subject)})</h1>",
        f"<p class=box><b>{'Best: ' + _e(best['label']) if best else 'No checkpoint passed'}</b>."
        f" {_e(_without_label(doc['reason'], best))}</p>",
        f"<p>Real photos: {doc['photos']['train']} training, {doc['photos']['holdout']} held out"
        f" (never trained on). Real-vs-real baseline (held-out vs training): <b>{_n(b['real_vs_real'])}</b>;"
        f" a real held-out photo's Paste: {_n(b['real_paste'])}; a copy of a training photo's:"
        f" {_n(b['copy_paste'])}. Encoder: {_e(encoder.NAME)}, cosine similarity.</p>",
        f"<p class=muted>{_e(doc['rules'])} SimTarget: mean cosine of a generated face to the held-out"
        " photos. SimRef: its highest cosine to a training photo. Paste = SimRef - SimTarget: high"
        " means it resembles one training photo more than the person. Diversity: perceptual-hash"
        f" distance between seeds of one prompt (0 = the same picture). {_e(doc['not_measured'])}</p>",
        "<h2>Checkpoints</h2><table><tr><th>checkpoint</th><th>faces found</th><th>SimTarget</th>"
        "<th>% of baseline</th><th>SimRef</th><th>Paste</th><th>copying</th><th>diversity</th>"
        "<th></th></tr>",
    ]
    for row in doc["checkpoints"]:
        is_best = best is not None and row["label"] == best["label"]
        note = "picked" if is_best else (row["why_not"] or "")
        if row["lora"] is None:
            note = "without the LoRA: a stranger's score, for scale"
        parts.append(
            f"<tr class='{'best' if is_best else ''}'><td>{_e(row['label'])}</td>"
            f"<td class='{'no' if row['faces_not_found'] else ''}'>{row['faces_found']}/{row['outputs']}</td>"
            f"<td>{_n(row['sim_target'])}</td><td>{_pct(row['ratio_to_baseline'])}</td>"
            f"<td>{_n(row['sim_ref'])}</td><td>{_n(row['paste'])}</td><td>{_pct(row['copying'])}</td>"
            f"<td>{_n(row['diversity'])}</td><td style='text-align:left'>{_e(note)}</td></tr>"
        )
    parts.append("</table>")
    parts.append("<h2>Held-out photos</h2><div class=grid>")
    parts += [_real_tile(p) for p in context.photos.holdout]
    parts.append("</div>")
    for row, data in zip(rows, doc["checkpoints"], strict=True):
        parts.append(f"<h2>{_e(data['label'])}</h2><table><tr><th>prompt</th><th>faces</th>"
                     "<th>SimTarget</th><th>SimRef</th><th>Paste</th><th>diversity</th></tr>")  # fmt: skip
        parts += [
            f"<tr><td>{_e(p['prompt'])}</td><td>{p['faces_found']}/{p['outputs']}</td>"
            f"<td>{_n(p['sim_target'])}</td><td>{_n(p['sim_ref'])}</td><td>{_n(p['paste'])}</td>"
            f"<td>{_n(p['diversity'])}</td></tr>"
            for p in data["prompts"]
        ]
        parts.append("</table><div class=grid>")
        for output in row.outputs:
            score = output.score
            caption = (
                "no face found"
                if score is None
                else f"T {score.sim_target:.3f} · R {score.sim_ref:.3f}"
            )
            parts.append(
                f"<div class='tile{'' if score else ' noface'}'>{_thumb(output.file)}"
                f"p{output.prompt_index + 1} seed {output.seed}<br>{caption}</div>"
            )
        parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts)


def link_from_select_report(export: Path, eval_html: Path, best: Candidate | None) -> None:
    """Add (or update) a link to eval.html at the top of the export's report.html, if any."""
    report = export / SELECT_REPORT
    try:
        text = report.read_text(encoding="utf-8")
    except OSError:
        return
    href = Path(os.path.relpath(eval_html, export)).as_posix()
    verdict = f"best checkpoint: {best.label}" if best else "no checkpoint passed"
    link = (
        f"<p class=faceset-eval><b>Likeness after training</b>: <a href='{_e(href)}'>{_e(href)}</a>"
        f" ({_e(verdict)}).</p>\n"
    )
    text = _LINK.sub("", text)
    at = text.find("</h1>")
    text = text[: at + 5] + "\n" + link + text[at + 5 :] if at >= 0 else text + link
    _write_text(report, text)


def _without_label(reason: str, best: dict[str, Any] | None) -> str:
    """Return ``reason`` without the leading "step 500: " the heading already says."""
    prefix = f"{best['label']}: " if best else "no checkpoint passed: "
    return reason.removeprefix(prefix)


def _real_tile(path: Path) -> str:
    return f"<div class='tile real'>{_thumb(path)}{_e(path.name[:20])}</div>"


def _thumb(path: Path) -> str:
    with Image.open(path) as image:
        small = image.convert("RGB")
        small.thumbnail((THUMB, THUMB))
    buffer = io.BytesIO()
    small.save(buffer, "JPEG", quality=85)
    return (
        f"<img alt='' src='data:image/jpeg;base64,{base64.b64encode(buffer.getvalue()).decode()}'>"
    )


def _write_text(path: Path, text: str) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def _n(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _e(text: str) -> str:
    return html.escape(text, quote=True)
