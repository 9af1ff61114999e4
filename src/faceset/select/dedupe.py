"""Near-duplicates and bursts: faces that would teach the same picture twice."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

# Inside one burst, faces this many hash bits apart still count as the same shot.
BURST_HASH_DISTANCE = 24


@dataclass(frozen=True, slots=True)
class Item:
    uid: str
    taken_at: datetime | None
    phash: int


def clusters(items: Sequence[Item], burst_seconds: int, hash_distance: int) -> list[list[str]]:
    """Return groups of UIDs that are near-duplicates: close perceptual hashes, or a burst.

    Two faces join when their 64-bit pHashes differ in at most ``hash_distance`` bits, or when
    they were taken within ``burst_seconds`` of each other and differ in at most 24 bits.
    """
    parent = list(range(len(items)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    hashes = np.array([item.phash for item in items], dtype=np.uint64)
    times = np.array(
        [item.taken_at.timestamp() if item.taken_at else np.nan for item in items], dtype=np.float64
    )
    for i in range(len(items) - 1):
        # One row of the pairwise comparison at a time, vectorised: 10,000 faces take a second.
        bits = np.bitwise_count(hashes[i + 1 :] ^ hashes[i])
        burst = np.abs(times[i + 1 :] - times[i]) <= burst_seconds
        for k in np.flatnonzero((bits <= hash_distance) | (burst & (bits <= BURST_HASH_DISTANCE))):
            parent[root(i + 1 + int(k))] = root(i)
    groups: dict[int, list[str]] = {}
    for i, item in enumerate(items):
        groups.setdefault(root(i), []).append(item.uid)
    return list(groups.values())
