"""Children that die with the process that started them.

A launcher killed the hard way (SIGKILL, an out-of-memory kill, a test runner's timeout) runs no
clean-up, and its children — Redis, the gateway, workers — would go on, orphaned, holding ports and
memory. Started through `bound_popen`, a child asks the kernel (Linux's PR_SET_PDEATHSIG) for a
SIGTERM the moment its parent is gone, and exits at once if the parent died before it could ask.

The signal follows the thread that started the child: start children from a thread that lives as
long as they should (the launchers here start them from their main thread).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from typing import Any

_PR_SET_PDEATHSIG = 1


def _die_with(parent: int) -> Any:
    # Looked up here, in the parent: between fork and exec the child only calls it.
    prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None

    def arrange() -> None:  # in the child, between fork and exec
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the request was made
            os._exit(1)

    return arrange


def bound_popen(command: Any, **kwargs: Any) -> subprocess.Popen[Any]:
    """`subprocess.Popen(command, **kwargs)`, for a child that must not outlive this process."""
    return subprocess.Popen(command, preexec_fn=_die_with(os.getpid()), **kwargs)
