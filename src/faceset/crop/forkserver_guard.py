"""Imported only by the forkserver (``crop/pool.py`` preloads it): the server that forks the
workers dies with the run's process, even one killed by SIGKILL, which then ends its workers
(each has PR_SET_PDEATHSIG set on the server). Without it, a killed run left the server and its
workers running, holding the caller's stdout open."""

from __future__ import annotations

import os
import signal
import sys

if sys.platform == "linux":
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() == 1:  # the run died before the server got this far
        os._exit(1)
