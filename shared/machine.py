"""What this machine (or this container) has to offer: its memory, as the model choice needs it."""

from __future__ import annotations

from pathlib import Path

_MEMINFO = Path("/proc/meminfo")
# cgroup v2, then v1: a container's limit is what its processes may use, whatever the host has.
_CGROUP_LIMITS = (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))


def memory_mb(meminfo: Path = _MEMINFO, cgroup_limits: tuple[Path, ...] = _CGROUP_LIMITS) -> int:
    """The memory this process may use, in MB: the machine's, or its container's limit if lower."""
    total = 0
    for line in meminfo.read_text().splitlines():
        if line.startswith("MemTotal:"):
            total = int(line.split()[1]) * 1024
            break
    for limit_file in cgroup_limits:
        try:
            limit = limit_file.read_text().strip()
        except OSError:
            continue
        if limit.isdigit() and 0 < int(limit) < total:
            total = int(limit)
    return total // 1_000_000
