"""Likeness numbers, from face embeddings alone (../shared/reference/quality.md section 3).

For each generated face g, against the person's real photos:

- ``SimTarget(g)``: mean cosine to the held-out photos (never trained on): likeness;
- ``SimRef(g)``: max cosine to the training photos: closeness to one photo it saw;
- ``Paste = SimRef - SimTarget`` (FlashFace, arXiv 2403.17008): copying a training photo raises
  SimRef, not SimTarget.

Scores are encoder-relative (dlib's cosines between different people are often 0.8-0.9), so
every number is read against the same person's real photos: the real-vs-real baseline (held-out
against training) is what a new real photo scores, and a real held-out photo's own Paste is
what "not copying" looks like. Pure numpy: no model, no images.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def unit(vectors: np.ndarray) -> np.ndarray:
    """Return ``vectors`` (n, d) scaled to length 1, row by row."""
    v = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.asarray(v / np.where(norms == 0, 1, norms))


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return the (n, m) cosine similarities between the rows of ``a`` (n, d) and ``b`` (m, d)."""
    return np.asarray(unit(a) @ unit(b).T)


@dataclass(frozen=True, slots=True)
class Baseline:
    """What real photos of the person score against each other with this encoder."""

    real_vs_real: float
    """Mean cosine between held-out and training photos: the realistic ceiling of SimTarget."""
    real_paste: float
    """Mean Paste of a held-out photo (SimRef to training minus mean cosine to the other
    held-out photos): what a genuinely new photo of the person scores."""
    copy_paste: float
    """Paste of a verbatim copy of a training photo, on average: 1 - mean cosine of a training
    photo to the held-out ones."""
    train: int
    holdout: int

    def copying(self, paste: float) -> float:
        """Return where ``paste`` lies from a new real photo's (0) to a verbatim copy's (1)."""
        span = self.copy_paste - self.real_paste
        if span <= 1e-9:
            # Training and held-out photos are indistinguishable to the encoder: any excess over
            # real photos is copying.
            return math.inf if paste > self.real_paste + 1e-9 else 0.0
        return (paste - self.real_paste) / span


def baseline(train: np.ndarray, holdout: np.ndarray) -> Baseline:
    """Return the real-vs-real numbers of ``train`` (n, d) and ``holdout`` (m, d) embeddings.

    Needs at least one training and two held-out embeddings (a held-out photo's own Paste
    compares it with the others).
    """
    if len(train) < 1 or len(holdout) < 2:
        raise ValueError("need at least 1 training and 2 held-out embeddings")
    cross = cosines(holdout, train)  # (m, n)
    among = cosines(holdout, holdout)
    m = len(holdout)
    others = (among.sum(axis=1) - np.diag(among)) / (m - 1)
    real_vs_real = float(cross.mean())
    return Baseline(
        real_vs_real=real_vs_real,
        real_paste=float((cross.max(axis=1) - others).mean()),
        copy_paste=float(1.0 - cross.mean(axis=0).mean()),
        train=len(train),
        holdout=m,
    )


@dataclass(frozen=True, slots=True)
class OutputScore:
    """One generated face against the real photos."""

    sim_target: float
    sim_ref: float
    nearest: int
    """Index of the training photo it is closest to."""

    @property
    def paste(self) -> float:
        return self.sim_ref - self.sim_target


def score_output(embedding: np.ndarray, train: np.ndarray, holdout: np.ndarray) -> OutputScore:
    """Return SimTarget, SimRef and the nearest training photo of one generated face."""
    to_train = cosines(embedding[None, :], train)[0]
    to_holdout = cosines(embedding[None, :], holdout)[0]
    nearest = int(np.argmax(to_train))
    return OutputScore(float(to_holdout.mean()), float(to_train[nearest]), nearest)


@dataclass(frozen=True, slots=True)
class Summary:
    """The numbers of one checkpoint (or of one prompt within it)."""

    outputs: int
    found: int
    """Outputs in which a face was found; the others are failures, not low scores."""
    sim_target: float | None
    sim_ref: float | None
    paste: float | None
    ratio: float | None
    """SimTarget / real-vs-real baseline: 1 is as alike as a real new photo."""
    copying: float | None
    """Paste placed between a new real photo's (0) and a verbatim copy's (1)."""
    diversity: float | None
    """Mean pairwise perceptual-hash distance between outputs of one prompt, 0 (all the same
    picture) to about 0.5 (unrelated pictures)."""

    @property
    def found_share(self) -> float:
        return self.found / self.outputs if self.outputs else 0.0


def summarise(
    scores: Sequence[OutputScore | None],
    base: Baseline,
    hashes_by_prompt: Sequence[Sequence[int]] = (),
) -> Summary:
    """Return the means over the outputs with a face; ``None`` entries are faces not found."""
    found = [s for s in scores if s is not None]
    div = diversity(hashes_by_prompt)
    if not found:
        return Summary(len(scores), 0, None, None, None, None, None, div)
    sim_target = float(np.mean([s.sim_target for s in found]))
    sim_ref = float(np.mean([s.sim_ref for s in found]))
    paste = sim_ref - sim_target
    return Summary(
        outputs=len(scores),
        found=len(found),
        sim_target=sim_target,
        sim_ref=sim_ref,
        paste=paste,
        ratio=sim_target / base.real_vs_real if base.real_vs_real > 0 else None,
        copying=base.copying(paste),
        diversity=div,
    )


def diversity(hashes_by_prompt: Sequence[Sequence[int]]) -> float | None:
    """Return the mean over prompts of the mean pairwise Hamming distance of 64-bit image hashes
    of that prompt's outputs, as a fraction of 64 bits; None with fewer than 2 outputs a prompt."""
    per_prompt = []
    for hashes in hashes_by_prompt:
        pairs = list(itertools.combinations(hashes, 2))
        if pairs:
            per_prompt.append(np.mean([(a ^ b).bit_count() / 64 for a, b in pairs]))
    return float(np.mean(per_prompt)) if per_prompt else None


@dataclass(frozen=True, slots=True)
class Choice:
    """The checkpoint to use, and why."""

    index: int | None
    """Index into the candidates; None when no checkpoint passes the rules."""
    reason: str
    why_not: dict[int, str]
    """Candidate index -> why it was not eligible."""


def choose(
    labels: Sequence[str],
    summaries: Sequence[Summary],
    base: Baseline,
    *,
    min_faces: float,
    max_copying: float,
) -> Choice:
    """Pick the candidate with the highest SimTarget among those that show a face in at least
    ``min_faces`` of their outputs and copy no more than ``max_copying``; say why.

    Ties go to the earlier candidate (fewer steps: less chance of memorising).
    """
    why_not: dict[int, str] = {}
    for i, s in enumerate(summaries):
        if s.found_share < min_faces:
            why_not[i] = f"a face in only {s.found} of {s.outputs} outputs (needs {min_faces:.0%})"
        elif s.copying is not None and s.copying > max_copying:
            why_not[i] = (
                f"Paste {s.paste:.3f} is {_copy_words(s.copying)} of the way from a real new"
                f" photo's ({base.real_paste:.3f}) to a copy of a training photo's"
                f" ({base.copy_paste:.3f}), over the {max_copying:.0%} allowed"
            )
    eligible = [i for i in range(len(summaries)) if i not in why_not]
    if not eligible:
        return Choice(None, "no checkpoint passed: " + "; ".join(
            f"{labels[i]}: {why}" for i, why in why_not.items()
        ), why_not)  # fmt: skip
    best = max(eligible, key=lambda i: (summaries[i].sim_target or -math.inf, -i))
    s = summaries[best]
    assert s.sim_target is not None
    reason = (
        f"{labels[best]}: highest SimTarget ({s.sim_target:.3f}, {s.ratio or 0:.0%} of the"
        f" real-photo baseline {base.real_vs_real:.3f}) among checkpoints showing a face in at"
        f" least {min_faces:.0%} of outputs with Paste no more than {max_copying:.0%} of the way"
        f" to copying; its Paste is {s.paste:.3f}"
    )
    better = [
        i
        for i in why_not
        if summaries[i].sim_target is not None and summaries[i].sim_target > s.sim_target  # type: ignore[operator]
    ]
    if better:
        reason += "; passed over with a higher SimTarget: " + "; ".join(
            f"{labels[i]} ({summaries[i].sim_target:.3f}): {why_not[i]}" for i in better
        )
    return Choice(best, reason, why_not)


def _copy_words(copying: float) -> str:
    return "past all" if math.isinf(copying) else f"{copying:.0%}"
