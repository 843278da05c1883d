"""Children die with the launcher that started them, even when it is killed the hard way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.conftest import ROOT, wait_for

# A launcher as the bench harness, the stack runner and the test fixtures are: it starts a Redis and
# a Python child through the project's own helpers, says their pids, and waits to be killed.
LAUNCHER = """
import sys, time
from pathlib import Path
from stack.lifeline import bound_popen
from stack.redis_server import free_port, start_redis

redis = start_redis(free_port(), Path(sys.argv[1]))
child = bound_popen([sys.executable, "-c", "import time; time.sleep(600)"])
print(redis.pid, child.pid, flush=True)
time.sleep(600)
"""


def _gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the kernel's parent-death signal")
def test_a_launcher_killed_with_sigkill_takes_its_redis_and_children_with_it(tmp_path: Path) -> None:
    pids: list[int] = []
    with subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    ) as launcher:
        try:
            assert launcher.stdout is not None
            pids = [int(pid) for pid in launcher.stdout.readline().split()]
            assert len(pids) == 2 and not any(_gone(pid) for pid in pids)
            launcher.send_signal(signal.SIGKILL)  # no clean-up of its own can run
            launcher.wait(timeout=30)
            wait_for(lambda: all(_gone(pid) for pid in pids), timeout=30)
        finally:
            launcher.kill()
            for pid in pids:
                if not _gone(pid):
                    os.kill(pid, signal.SIGKILL)
