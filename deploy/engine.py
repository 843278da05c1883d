"""A Docker engine for the deployment check: installed, started and given base images when missing.

Standard library only, so it runs before (and without) the project's virtualenv. These machines
reach Debian's and PyPI's package registries but no image registry, so the two base images the
project names are built here as stand-ins: a Debian bookworm root file system with Python imported
as `python:3.11-slim-bookworm` (Debian's Python is 3.11 too), and Debian's `redis-server` on it
tagged `redis:7.4-alpine`. On a machine that can pull, real images already present are used as is.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("deploy.engine")

PYTHON_IMAGE = "python:3.11-slim-bookworm"
REDIS_IMAGE = "redis:7.4-alpine"
STANDIN_LABEL = "ai-assistant.standin=1"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
REDIS_STANDIN = f"""\
FROM {PYTHON_IMAGE}
RUN apt-get update && apt-get install -y --no-install-recommends redis-server \\
    && rm -rf /var/lib/apt/lists/* && mkdir -p /data && chown redis:redis /data
LABEL {STANDIN_LABEL}
WORKDIR /data
USER redis
CMD ["redis-server"]
"""


def run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a command, failing loudly with its output when it fails."""
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        output = (result.stdout + result.stderr)[-4000:]
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{output}")
    return result  # type: ignore[no-any-return]


def docker_answers() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


@dataclass
class Engine:
    """What this check started or made, so that it can take it all away again."""

    dockerd: subprocess.Popen[bytes] | None = None
    images: list[str] = field(default_factory=list)

    def start(self, log_file: Path) -> None:
        _install_missing()
        if docker_answers():
            return
        log.info("starting dockerd (its log: %s)", log_file)
        with open(log_file, "ab") as out:
            # No iptables: this machine's network is not ours to rewrite; the containers need no
            # internet, and ports published on loopback go through docker's own proxy.
            self.dockerd = subprocess.Popen(
                ["dockerd", "--iptables=false", "--ip-masq=false"], stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 60
        while not docker_answers():
            if self.dockerd.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dockerd did not start; see {log_file}")
            time.sleep(0.5)

    def base_images(self) -> None:
        if not _image_exists(PYTHON_IMAGE):
            _debootstrap_python_image()
            self.images.append(PYTHON_IMAGE)
        if not _image_exists(REDIS_IMAGE):
            with tempfile.TemporaryDirectory() as context:
                (Path(context) / "Dockerfile").write_text(REDIS_STANDIN)
                run(["docker", "build", "--network=host", "-t", REDIS_IMAGE, context])
            self.images.append(REDIS_IMAGE)

    def stop(self) -> None:
        """Remove the images this check made (newest first), then stop the engine if it started it."""
        for image in reversed(self.images):
            subprocess.run(["docker", "image", "rm", "-f", image], capture_output=True)
        if self.dockerd is not None:
            # An engine of our own: its build cache is ours too (the compiled llama.cpp layers).
            subprocess.run(["docker", "builder", "prune", "-af"], capture_output=True)
            self.dockerd.terminate()
            try:
                self.dockerd.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.dockerd.kill()


def compose_command() -> list[str]:
    """`docker compose` (v2) where the plugin is there, else `docker-compose` (1.29)."""
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise RuntimeError("neither `docker compose` nor `docker-compose` is installed")


def _install_missing() -> None:
    wanted = {"dockerd": "docker.io", "docker-compose": "docker-compose", "debootstrap": "debootstrap"}
    missing = [package for binary, package in wanted.items() if shutil.which(binary) is None]
    if shutil.which("docker") is None and "docker.io" not in missing:
        missing.append("docker.io")
    if not missing:
        return
    log.info("installing %s", " ".join(missing))
    run(["apt-get", "update", "-qq"])
    run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )


def _image_exists(name: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", name], capture_output=True).returncode == 0


def _debootstrap_python_image() -> None:
    log.info("building the stand-in %s with debootstrap", PYTHON_IMAGE)
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        rootfs = Path(tmp) / "rootfs"
        run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=python3,python3-venv,python-is-python3,ca-certificates",
                "bookworm",
                str(rootfs),
                DEBIAN_MIRROR,
            ]
        )
        # A machine behind a TLS-inspecting proxy trusts extra authorities; so must its builds.
        local_cas = Path("/usr/local/share/ca-certificates")
        if local_cas.is_dir() and any(local_cas.iterdir()):
            shutil.copytree(local_cas, rootfs / "usr/local/share/ca-certificates", dirs_exist_ok=True)
            run(["chroot", str(rootfs), "update-ca-certificates"])
        shutil.rmtree(rootfs / "var/cache/apt/archives", ignore_errors=True)
        (rootfs / "var/cache/apt/archives/partial").mkdir(parents=True)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        run(
            [
                "docker",
                "import",
                "--change",
                "ENV LANG=C.UTF-8",
                "--change",
                f"LABEL {STANDIN_LABEL}",
                "--change",
                'CMD ["python3"]',
                "-",
                PYTHON_IMAGE,
            ],
            stdin=tar.stdout,
        )
        tar.wait()
