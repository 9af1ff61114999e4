"""Is it the right person? Distances of each face's embedding to the person's robust centre."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# 1.4826 * MAD estimates the standard deviation of normally distributed distances.
MAD_TO_SIGMA = 1.4826
# Distances beyond median + 3 sigma are outliers, but never closer than 25 % above the median:
# a tight, clean set must not lose its own tail.
SIGMAS = 3.0
MIN_MARGIN = 0.25
# Below this distance two unit embeddings are the same person for FaceNet (PhotoPrism matches at
# 0.46) and dlib (0.6) alike: a set of near-identical photos must not reject its own members.
MIN_THRESHOLD = 0.4
# Fewer confirmed faces than this and the centre comes from every face instead.
MIN_CONFIRMED = 3


@dataclass(frozen=True, slots=True)
class IdentityCheck:
    distances: dict[str, float]
    """Marker UID -> Euclidean distance of the unit embedding to the centre (0-2)."""
    threshold: float
    centre_from: str
    """Which faces made the centre: 'confirmed' or 'all'."""
    centre: np.ndarray | None = None
    """The unit centre the distances are measured from."""


def unit(vector: Sequence[float]) -> np.ndarray:
    v = np.asarray(vector, dtype=np.float64)
    norm = np.linalg.norm(v)
    return v / norm if norm > 0 else v


def check(
    embeddings: dict[str, Sequence[float]], confirmed: set[str], threshold: float | None = None
) -> IdentityCheck | None:
    """Return each face's distance to the centre of the person and the outlier threshold.

    The centre is the element-wise median of the unit embeddings of the faces the user
    confirmed (all faces when too few are), so a few wrong faces cannot drag it. Returns None
    when fewer than 3 faces have embeddings of one length.
    """
    if not embeddings:
        return None
    lengths = [len(v) for v in embeddings.values()]
    common = max(set(lengths), key=lengths.count)
    vectors = {uid: unit(v) for uid, v in embeddings.items() if len(v) == common}
    if len(vectors) < 3:
        return None
    trusted = [v for uid, v in vectors.items() if uid in confirmed]
    source = "confirmed" if len(trusted) >= MIN_CONFIRMED else "all"
    centre = _median_unit(trusted if source == "confirmed" else list(vectors.values()))
    # Refine once: the median of every face that is not an outlier of the first centre. A centre
    # from a few confirmed faces is noisy, and their own distances to it are biased low.
    first = {uid: float(np.linalg.norm(v - centre)) for uid, v in vectors.items()}
    limit = _limit(list(first.values()))
    inliers = [vectors[uid] for uid, d in first.items() if d <= limit]
    if len(inliers) >= 3:
        centre = _median_unit(inliers)
    distances = {uid: float(np.linalg.norm(v - centre)) for uid, v in vectors.items()}
    if threshold is None:
        spread = _limit([d for d in distances.values() if d <= _limit(list(distances.values()))])
        threshold = max(spread, MIN_THRESHOLD)
    return IdentityCheck(distances, threshold, source, centre)


def _median_unit(vectors: list[np.ndarray]) -> np.ndarray:
    return unit(np.median(np.stack(vectors), axis=0))


def _limit(distances: list[float]) -> float:
    """Return median + max(3 sigma, 25 % of the median), sigma estimated from the MAD."""
    values = np.asarray(distances)
    median = float(np.median(values))
    mad = float(np.median(np.abs(values - median)))
    return median + max(SIGMAS * MAD_TO_SIGMA * mad, MIN_MARGIN * median)
