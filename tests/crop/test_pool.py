"""The worker pool survives a worker killed by a signal and names the job that killed it."""

from __future__ import annotations

import crashers
from faceset.crop.pool import map_bounded


def test_a_worker_killed_by_sigsegv_costs_one_job_not_the_run() -> None:
    results = list(
        map_bounded(crashers.tenfold_but_segfault_on_3, range(40), 2, crashed=lambda j: -j)
    )

    assert sorted(results) == sorted([-3] + [x * 10 for x in range(40) if x != 3])
