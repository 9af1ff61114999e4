"""Selection against known ground truth: are wrong people, bursts, blur and tiny faces caught?

    python -m bench.select [--faces 120] [--out out/bench-select]

Builds a PhotoPrism library of one person over eight years with planted problems, each recorded:
markers of a look-alike sibling auto-matched to the person (with the sibling's embedding, as
PhotoPrism stores them), bursts of near-identical shots seconds apart, blurred and tiny faces,
old photos. Runs ``faceset select --best 30`` and prints precision and recall of each rejection
and the age and day spread of the chosen set. Targets: every planted wrong-person face rejected,
at most 5 % of true faces lost to the identity check, no two chosen photos from one burst.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from faceset import config, pipeline
from faceset.demo.images import encode, varied_photo, write
from faceset.demo.library import LibraryWriter, MarkerSpec, sqlite_schema, square_box

SIZE = (1600, 1200)
FACE = (560, 260, 1000, 700)
# Same-person FaceNet distances of unit embeddings are about 0.6-0.9; siblings sit nearer than
# strangers but outside that band (PhotoPrism clusters at 0.64, matches at 0.46 on its scale).
SPREAD = 0.035
SIBLING_OFFSET = 0.045


@dataclass(frozen=True, slots=True)
class Truth:
    kind: str
    """'true', 'sibling', 'burst', 'blurred' or 'tiny'."""
    group: str = ""
    """Burst id for burst members."""


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def build(root: Path, faces: int, seed: int = 11) -> tuple[str, dict[str, Truth]]:
    """Build the library under ``root``; return its index URL and the truth per file name."""
    if root.exists():
        shutil.rmtree(root)
    originals = root / "originals"
    index = root / "storage" / "index.db"
    index.parent.mkdir(parents=True)
    with sqlite3.connect(index) as conn:
        conn.executescript(sqlite_schema())
    engine = sa.create_engine(f"sqlite:///{index}")
    lib = LibraryWriter(engine)
    ana = lib.person("Ana Example")
    rng = np.random.default_rng(seed)
    centre = _unit(rng.normal(size=512))
    sibling = _unit(centre + rng.normal(0, SIBLING_OFFSET, 512))
    now = datetime.now()
    truth: dict[str, Truth] = {}

    def add(name: str, kind: str, when: datetime, pattern: int, *, blur: float = 0.0,
            face: tuple[int, int, int, int] = FACE, who: np.ndarray = centre, group: str = "") -> None:  # fmt: skip
        photo = varied_photo(SIZE, face, pattern, blur)
        data = encode(photo, "JPEG", int(rng.integers(1, 9)))
        write(originals / name, data)
        emb = tuple(float(x) for x in _unit(who + rng.normal(0, SPREAD, 512)))
        confirmed = kind != "sibling" and bool(rng.random() < 0.6)
        spec = MarkerSpec(square_box(face, *SIZE), ana, confirmed=confirmed, embedding=emb)
        taken = when
        photo_row = lib.photo(taken, name=name)
        lib.file(photo_row, name, data, width=SIZE[0], height=SIZE[1], markers=(spec,), when=taken)
        truth[name] = Truth(kind, group)

    pattern = 0
    for i in range(faces):
        pattern += 1
        days = float(rng.uniform(0, 8 * 365))
        when = now - timedelta(days=days)
        kind = rng.choice(["true"] * 14 + ["sibling", "blurred", "tiny", "burst"])
        if kind == "burst":
            for k in range(int(rng.integers(3, 6))):
                add(
                    f"{i:04d}-burst-{k}.jpg",
                    "burst",
                    when + timedelta(seconds=2 * k),
                    pattern,
                    group=f"b{i}",
                )
        elif kind == "sibling":
            add(f"{i:04d}-sibling.jpg", "sibling", when, pattern, who=sibling)
        elif kind == "blurred":
            add(f"{i:04d}-blurred.jpg", "blurred", when, pattern, blur=float(rng.uniform(5, 9)))
        elif kind == "tiny":
            add(f"{i:04d}-tiny.jpg", "tiny", when, pattern, face=(760, 400, 840, 480))
        else:
            add(f"{i:04d}.jpg", "true", when, pattern)
    engine.dispose()
    return f"sqlite:///{index}", truth


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--faces", type=int, default=120, help="photo events to plant (default 120)"
    )
    parser.add_argument("--best", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("out/bench-select"))
    args = parser.parse_args()

    started = time.perf_counter()
    url, truth = build(args.out / "library", args.faces)
    built = time.perf_counter() - started
    cfg = config.load(
        None,
        {
            "library": {"db": url, "originals": args.out / "library" / "originals"},
            "select": {"best": args.best, "face_model": "off"},
            "export": {"out": args.out / "report"},
        },
        environ={},
    )
    started = time.perf_counter()
    result = pipeline.select(cfg, "Ana Example")
    took = time.perf_counter() - started
    decisions = {d.face.file_name: d for d in result.selection.decisions}

    kinds = Counter(t.kind for t in truth.values())
    print(f"library: {len(truth)} faces ({dict(kinds)}), built in {built:.1f} s")
    print(
        f"selection: {took:.1f} s, {len(result.selection.chosen)} chosen; report {result.files.get('report')}"
    )
    print(
        f"{'rejection':<14}{'planted':>8}{'caught':>8}{'recall':>8}{'flagged':>8}{'precision':>10}"
    )
    ok = True
    for reason, kind in (("wrong_person", "sibling"), ("blurry", "blurred"), ("too_small", "tiny")):
        planted = {n for n, t in truth.items() if t.kind == kind}
        flagged = {n for n, d in decisions.items() if d.reason == reason}
        caught = planted & flagged
        recall = len(caught) / len(planted) if planted else 1.0
        precision = len(caught) / len(flagged) if flagged else 1.0
        print(
            f"{reason:<14}{len(planted):>8}{len(caught):>8}{recall:>8.0%}{len(flagged):>8}{precision:>10.0%}"
        )
        if reason == "wrong_person":
            true_faces = {n for n, t in truth.items() if t.kind in ("true", "burst")}
            lost = len(true_faces & flagged) / len(true_faces)
            print(f"  true faces lost to the identity check: {lost:.1%} (target <= 5 %)")
            ok &= recall == 1.0 and lost <= 0.05
    chosen = [d for d in result.selection.chosen]
    bursts = Counter(truth[d.face.file_name].group for d in chosen if truth[d.face.file_name].group)
    repeated = {g: n for g, n in bursts.items() if n > 1}
    print(
        f"bursts: {len(bursts)} represented in the chosen set, {len(repeated)} with more than one photo (target 0)"
    )
    ok &= not repeated
    wrong_in_set = sum(
        1 for d in chosen if truth[d.face.file_name].kind in ("sibling", "blurred", "tiny")
    )
    print(f"planted problems in the chosen set: {wrong_in_set}")
    dates = sorted(d.face.taken_at for d in chosen if d.face.taken_at)
    if dates:
        now = datetime.now()
        ages = [(now - t).days / 365.25 for t in dates]
        days = len({t.date() for t in dates})
        print(f"chosen set: ages {min(ages):.1f}-{max(ages):.1f} years (median {float(np.median(ages)):.1f}),"
              f" {days} distinct days of {len(dates)} photos")  # fmt: skip
    for warning in result.selection.warnings:
        print(f"warning: {warning}")
    summary = {"ok": bool(ok), "counts": result.selection.counts(), "seconds": round(took, 1)}
    print(json.dumps(summary))
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
