"""Choose the training set: reject what is wrong, keep the best of each burst, spread the rest.

Every face ends with a decision and, when not chosen, the reason in words a user can check.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from faceset.model import Face
from faceset.select import dedupe, identity
from faceset.select.analyze import Analysis, FaceStats
from faceset.select.config import SelectConfig, oldest_allowed

# Absolute floors that hold whatever the person's own median is.
MIN_SHARPNESS = 15.0
DARKEST, BRIGHTEST = 35.0, 225.0
MAX_CLIPPED = 0.3
MAX_OUTSIDE = 0.25
# Another face closer than this many face sides makes a photo less wanted, not rejected.
CROWDED_SIDES = 2.5
OLD_YEARS = 3.0
# Fewer held-out photos than this make the likeness score noise (quality.md, section 3).
MIN_HOLDOUT = 5


@dataclass(frozen=True, slots=True)
class Decision:
    """What selection decided about one face."""

    face: Face
    stats: FaceStats | None
    chosen: bool
    reason: str | None = None
    """Why it was not chosen: a short code such as 'blurry' or 'wrong_person'."""
    detail: str = ""
    score: float = 0.0
    """Quality with the recency preference, 0-1; higher is better."""
    distance: float | None = None
    """Identity distance to the person's centre, when embeddings exist."""


@dataclass(slots=True)
class Selection:
    decisions: list[Decision]
    threshold: float | None = None
    warnings: list[str] = field(default_factory=list)
    wanted: int | None = None
    """How many faces were asked for (``--best``)."""

    @property
    def chosen(self) -> list[Decision]:
        return [d for d in self.decisions if d.chosen]

    @property
    def rejected(self) -> list[Decision]:
        return [d for d in self.decisions if not d.chosen]

    def counts(self) -> dict[str, int]:
        return dict(Counter(d.reason or "chosen" for d in self.decisions))

    def shortfall(self) -> str | None:
        """Return why fewer faces were chosen than ``wanted``, naming the reasons that took the
        rest (most first); None when the choice is full."""
        chosen = len(self.chosen)
        if self.wanted is None or chosen >= self.wanted:
            return None
        reasons = Counter(d.reason for d in self.rejected if d.reason)
        why = ", ".join(f"{n} {r.replace('_', ' ')}" for r, n in reasons.most_common())
        return (
            f"chose {chosen} of the {self.wanted} faces asked for, from {len(self.decisions)}"
            + (f"; the rest were left out: {why}" if why else "")
        )


def choose(
    analyses: Sequence[Analysis],
    cfg: SelectConfig,
    size: int,
    face_ratio: float,
    now: datetime,
) -> Selection:
    """Return a decision for every face: the ``cfg.best`` chosen ones first, then the rest."""
    rejected: dict[str, Decision] = {}
    alive: list[Analysis] = []
    oldest = oldest_allowed(cfg, now)
    for a in analyses:
        reason = _first_problem(a, size, face_ratio, oldest)
        if reason:
            rejected[a.face.marker_uid] = Decision(a.face, a.stats, False, *reason)
        else:
            alive.append(a)

    sharp = [a.stats.sharpness for a in alive if a.stats]
    floor = (
        max(MIN_SHARPNESS, cfg.blur_ratio * statistics.median(sharp)) if sharp else MIN_SHARPNESS
    )
    survivors = []
    for a in alive:
        assert a.stats is not None
        if a.stats.sharpness < floor:
            rejected[a.face.marker_uid] = Decision(
                a.face, a.stats, False, "blurry", f"sharpness {a.stats.sharpness:.0f} < {floor:.0f}"
            )
        else:
            survivors.append(a)

    check = identity.check(
        {a.face.marker_uid: v for a in survivors if (v := _embedding(a)) is not None},
        {a.face.marker_uid for a in survivors if a.face.confirmed},
        cfg.identity_threshold,
    )
    distances = check.distances if check else {}
    kept = []
    for a in survivors:
        d = distances.get(a.face.marker_uid)
        if check and d is not None and d > check.threshold:
            rejected[a.face.marker_uid] = Decision(
                a.face, a.stats, False, "wrong_person",
                f"identity distance {d:.2f} > {check.threshold:.2f} from the person's centre",
                distance=d,
            )  # fmt: skip
        else:
            kept.append(a)

    scores = {a.face.marker_uid: _score(a, kept, distances, check, now, cfg, size) for a in kept}
    by_uid = {a.face.marker_uid: a for a in kept}
    unique = []
    items = [
        dedupe.Item(a.face.marker_uid, a.face.taken_at, a.stats.phash) for a in kept if a.stats
    ]
    for group in dedupe.clusters(items, cfg.burst_seconds, cfg.duplicate_distance):
        best = max(group, key=lambda u: (scores[u], u))
        unique.append(by_uid[best])
        for uid in group:
            if uid != best:
                a = by_uid[uid]
                rejected[uid] = Decision(
                    a.face, a.stats, False, "duplicate",
                    f"near-duplicate of {_label(by_uid[best].face)}, which scored higher",
                    scores[uid], distances.get(uid),
                )  # fmt: skip

    held = _hold_out(unique, scores, cfg)
    for a in held:
        rejected[a.face.marker_uid] = Decision(
            a.face, a.stats, False, "held_out",
            "kept out of training to measure likeness on photos the model never saw",
            scores[a.face.marker_uid], distances.get(a.face.marker_uid),
        )  # fmt: skip
    held_days = {_day(a) for a in held}
    held_uids = {a.face.marker_uid for a in held}
    # A training photo from a held-out day would make the held-out score a memory test.
    trainable = [
        a for a in unique if a.face.marker_uid not in held_uids and _day(a) not in held_days
    ]
    for a in unique:
        if a.face.marker_uid not in held_uids and _day(a) in held_days:
            rejected[a.face.marker_uid] = Decision(
                a.face, a.stats, False, "held_out_day",
                "taken on the day of a held-out photo: kept out so the evaluation stays honest",
                scores[a.face.marker_uid], distances.get(a.face.marker_uid),
            )  # fmt: skip
    picked = _spread(trainable, scores, cfg)
    decisions = [
        Decision(
            a.face,
            a.stats,
            True,
            score=scores[a.face.marker_uid],
            distance=distances.get(a.face.marker_uid),
        )
        for a in picked
    ]
    chosen_uids = {a.face.marker_uid for a in picked}
    for a in sorted(unique, key=lambda a: -scores[a.face.marker_uid]):
        if a.face.marker_uid not in chosen_uids and a.face.marker_uid not in rejected:
            rejected[a.face.marker_uid] = Decision(
                a.face, a.stats, False, "surplus",
                f"good, but {len(picked)} better or more varied faces were chosen",
                scores[a.face.marker_uid], distances.get(a.face.marker_uid),
            )  # fmt: skip
    order = {a.face.marker_uid: i for i, a in enumerate(analyses)}
    decisions += sorted(rejected.values(), key=lambda d: (d.reason or "", order[d.face.marker_uid]))
    return Selection(
        decisions, check.threshold if check else None, _warnings(decisions, now, check), cfg.best
    )


def _first_problem(
    a: Analysis, size: int, face_ratio: float, oldest: datetime | None
) -> tuple[str, str] | None:
    if a.problem is not None:
        reason = a.problem.reason.value if a.problem.reason else "error"
        return reason, a.problem.detail
    stats = a.stats
    assert stats is not None
    if oldest and a.face.taken_at and a.face.taken_at < oldest:
        return "too_old", f"taken {a.face.taken_at:%Y-%m-%d}, before {oldest:%Y-%m-%d}"
    if stats.window_px < size:
        return (
            "too_small",
            f"face {stats.face_px:.0f} px: its crop window {stats.window_px:.0f} px < {size} px",
        )
    if stats.outside > MAX_OUTSIDE:
        return "partial", f"{stats.outside:.0%} of the face box lies outside the photo"
    if stats.found is False:
        return (
            "no_face_found",
            "the face detector finds no face in the box (occluded or not a face)",
        )
    if not DARKEST <= stats.brightness <= BRIGHTEST or stats.clipped > MAX_CLIPPED:
        return (
            "exposure",
            f"face brightness {stats.brightness:.0f}/255, {stats.clipped:.0%} clipped",
        )
    return None


def _embedding(a: Analysis) -> tuple[float, ...] | None:
    if a.face.embedding is not None:
        return a.face.embedding
    return a.stats.embedding if a.stats else None


def _score(
    a: Analysis,
    pool: Sequence[Analysis],
    distances: dict[str, float],
    check: identity.IdentityCheck | None,
    now: datetime,
    cfg: SelectConfig,
    size: int,
) -> float:
    """Return the face's quality (0-1) scaled by how recent it is."""
    stats = a.stats
    assert stats is not None
    sharper = sum(1 for b in pool if b.stats and b.stats.sharpness < stats.sharpness)
    sharp_rank = sharper / max(len(pool) - 1, 1)
    size_score = min(1.0, stats.window_px / (2 * size))
    exposure = 1.0 - min(1.0, abs(stats.brightness - 128) / 128 + stats.clipped)
    detector = min(1.0, max(a.face.score, 0) / 60) if a.face.detected else 0.8
    ident = 0.5
    d = distances.get(a.face.marker_uid)
    if check and d is not None:
        ident = max(0.0, 1.0 - d / check.threshold)
    quality = (
        0.35 * sharp_rank
        + 0.15 * size_score
        + 0.15 * exposure
        + 0.1 * detector
        + 0.15 * ident
        + 0.1 * (1.0 if a.face.confirmed else 0.0)
    )
    if stats.crowding < CROWDED_SIDES:
        quality -= 0.15 * (CROWDED_SIDES - stats.crowding) / CROWDED_SIDES
    recency = 1.0
    if a.face.taken_at:
        age = max(0.0, (now - a.face.taken_at).days / 365.25)
        recency = 0.5 ** (age / cfg.recency_years)
    return round(max(0.0, quality) * (0.5 + 0.5 * recency), 4)


def _spread(
    candidates: Sequence[Analysis], scores: dict[str, float], cfg: SelectConfig
) -> list[Analysis]:
    """Return up to ``cfg.best`` faces, greedily trading score against repeats of day, pose, framing."""
    if cfg.best is None:
        return sorted(candidates, key=lambda a: (-scores[a.face.marker_uid], a.face.marker_uid))
    picked: list[Analysis] = []
    days: Counter[str] = Counter()
    poses: Counter[str] = Counter()
    framings: Counter[str] = Counter()
    remaining = list(candidates)
    while remaining and len(picked) < cfg.best:

        def value(a: Analysis) -> tuple[float, str]:
            n = max(len(picked), 1)
            penalty = (
                0.25 * days[_day(a)] + 0.15 * poses[_pose(a)] / n + 0.1 * framings[_framing(a)] / n
            )
            return scores[a.face.marker_uid] - penalty, a.face.marker_uid

        allowed = [a for a in remaining if days[_day(a)] < cfg.per_day]
        if not allowed:
            break
        best = max(allowed, key=value)
        picked.append(best)
        remaining.remove(best)
        days[_day(best)] += 1
        poses[_pose(best)] += 1
        framings[_framing(best)] += 1
    return picked


def _hold_out(
    candidates: Sequence[Analysis], scores: dict[str, float], cfg: SelectConfig
) -> list[Analysis]:
    """Return confirmed faces of every other recent day, kept out of training for evaluation.

    About ``cfg.holdout`` of the candidates, at least 5, but only while ``cfg.best`` faces are
    still left to train on; none when no best-N selection was asked for.
    """
    if cfg.best is None or cfg.holdout <= 0:
        return []
    spare = len(candidates) - cfg.best
    wanted = min(max(MIN_HOLDOUT, round(cfg.holdout * len(candidates))), spare // 2)
    if wanted < MIN_HOLDOUT:
        return []
    confirmed = [a for a in candidates if a.face.confirmed]
    newest = sorted(
        confirmed, key=lambda a: (a.face.taken_at or datetime.min, a.face.marker_uid), reverse=True
    )
    held: list[Analysis] = []
    days: list[str] = []
    for a in newest:
        if _day(a) in days:
            continue
        days.append(_day(a))
        # Every other recent day: training keeps recent photos too, so neither set is old.
        if len(days) % 2 == 1:
            held.append(a)
        if len(held) == wanted:
            break
    return held if len(held) >= MIN_HOLDOUT else []


def _day(a: Analysis) -> str:
    return f"{a.face.taken_at:%Y-%m-%d}" if a.face.taken_at else f"unknown-{a.face.photo_uid}"


def _pose(a: Analysis) -> str:
    yaw = a.stats.yaw if a.stats else None
    if yaw is None:
        return "unknown"
    return "left" if yaw < -0.25 else "right" if yaw > 0.25 else "frontal"


def _framing(a: Analysis) -> str:
    """Bucket of how much of the photo the face fills: close-up, portrait, wide."""
    stats = a.stats
    if stats is None or not a.face.file_width:
        return "unknown"
    share = stats.face_px / max(a.face.file_width, a.face.file_height)
    return "close" if share > 0.25 else "portrait" if share > 0.1 else "wide"


def _label(face: Face) -> str:
    return face.file_name.rsplit("/", 1)[-1] + (
        f" ({face.taken_at:%Y-%m-%d})" if face.taken_at else ""
    )


def _warnings(
    decisions: Sequence[Decision], now: datetime, check: identity.IdentityCheck | None
) -> list[str]:
    chosen = [d for d in decisions if d.chosen]
    notes = []
    dates = [d.face.taken_at for d in chosen if d.face.taken_at]
    if dates:
        old = sum(1 for t in dates if (now - t).days / 365.25 > OLD_YEARS)
        if old * 2 > len(dates):
            notes.append(
                f"{old} of {len(dates)} chosen photos are older than {OLD_YEARS:.0f} years: the model"
                " may look younger than the person does today (try --years)"
            )
    if check is None:
        notes.append(
            "no face embeddings for these faces: the identity check did not run"
            " (pip install 'faceset[identity]' computes them locally)"
        )
    if chosen and math.isfinite(
        min((d.stats.crowding for d in chosen if d.stats), default=math.inf)
    ):
        crowded = sum(1 for d in chosen if d.stats and d.stats.crowding < CROWDED_SIDES)
        if crowded:
            notes.append(f"{crowded} chosen photos have another face close by; masks cover them")
    return notes
