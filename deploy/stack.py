"""One compose deployment under test: its commands, and the gateway's routes as a client calls them."""

from __future__ import annotations

import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploy.http import call, wait_until

FINAL = {"finished", "failed", "canceled"}


def docker(*args: str) -> str:
    """The output of a `docker` command that must succeed."""
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Deployment:
    compose_tool: list[str]
    directory: Path
    project: str
    env: dict[str, str]
    extra_files: list[Path] = field(default_factory=list)

    # --- compose -------------------------------------------------------------------------

    def compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        files = ["-f", "docker-compose.yml", *[a for f in self.extra_files for a in ("-f", str(f))]]
        command = [*self.compose_tool, "-p", self.project, *files, *args]
        result = subprocess.run(command, cwd=self.directory, capture_output=True, text=True, timeout=1800)
        if check and result.returncode != 0:
            logs = subprocess.run(
                [*command[: -len(args)], "logs", "--tail", "40"],
                cwd=self.directory,
                capture_output=True,
                text=True,
            )
            raise RuntimeError(f"{' '.join(args)} failed:\n{result.stderr[-3000:]}\n{logs.stdout[-6000:]}")
        return result

    def up(self) -> None:
        self.compose("up", "-d")
        self.wait_healthy()

    def wait_healthy(self) -> dict[str, Any]:
        return self.wait_workers(1)

    def wait_workers(self, count: int) -> dict[str, Any]:
        """Wait for a healthy gateway that sees at least `count` live worker processes (0: any)."""

        def enough() -> dict[str, Any] | None:
            health = self.health()
            return health if health and health.get("workers", 0) >= count else None

        return wait_until(f"a healthy gateway with {count} worker(s)", enough, 300)

    def container(self, service: str) -> str:
        ids = self.compose("ps", "-q", service).stdout.split()
        if not ids:
            # `ps` leaves out exited one-off containers in some compose versions; ask the engine.
            project, name = self._label("project", self.project), self._label("service", service)
            ids = docker("ps", "-aq", "--filter", project, "--filter", name).split()
        return ids[0]

    def inspect(self, service: str, template: str) -> str:
        return docker("inspect", "-f", template, self.container(service)).strip()

    def exit_code(self, service: str) -> int:
        return int(self.inspect(service, "{{.State.ExitCode}}"))

    def containers(self) -> dict[str, str]:
        """Running containers of the project: name → id."""
        listed = docker(
            "ps", "--filter", self._label("project", self.project), "--format", "{{.Names}} {{.ID}}"
        )
        return dict(line.split() for line in listed.split("\n") if line.strip())

    @staticmethod
    def _label(key: str, value: str) -> str:
        return f"label=com.docker.compose.{key}={value}"

    def process_uids(self) -> dict[str, set[int]]:
        """Every process of every running container, by the user it runs as (seen from the host)."""
        found: dict[str, set[int]] = {}
        for name, container in self.containers().items():
            rows = docker("top", container, "-o", "pid,uid").split("\n")[1:]
            found[name] = {int(row.split()[1]) for row in rows if row.strip()}
        return found

    def memory(self) -> dict[str, float]:
        """Resident memory of each running container, in MB."""
        units = {"B": 1e-6, "KiB": 1024 / 1e6, "MiB": 1024**2 / 1e6, "GiB": 1024**3 / 1e6}
        listed = docker(
            "stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}", *self.containers().values()
        )
        memory: dict[str, float] = {}
        for line in listed.split("\n"):
            if not line.strip():
                continue
            name, usage = line.split(" ", 1)
            amount = usage.split("/")[0].strip()
            unit = next(u for u in sorted(units, key=len, reverse=True) if amount.endswith(u))
            memory[name.removeprefix(self.project + "_").removeprefix(self.project + "-")] = (
                float(amount.removesuffix(unit)) * units[unit]
            )
        return memory

    # --- the gateway ---------------------------------------------------------------------

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.env['API_PORT']}"

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.env["API_KEY"]}

    def health(self) -> dict[str, Any]:
        status, body = call("GET", self.api + "/health", timeout=5)
        return body if status == 200 and isinstance(body, dict) else {}

    def post(self, user: str, text: str) -> dict[str, Any]:
        status, body = call("POST", self.api + "/api/chat", {"user_id": user, "text": text}, self.headers)
        if status not in (200, 202):
            raise RuntimeError(f"POST /api/chat: {status} {body}")
        return dict(body)

    def status(self, task_id: str) -> dict[str, Any]:
        status, body = call("GET", f"{self.api}/api/status/{task_id}", headers=self.headers)
        if status != 200:
            raise RuntimeError(f"GET /api/status: {status} {body}")
        return dict(body)

    def wait_done(self, task_id: str, timeout: float = 300) -> dict[str, Any]:
        return wait_until(
            f"task {task_id}", lambda: s if (s := self.status(task_id))["status"] in FINAL else None, timeout
        )

    def post_voice(self, user: str, audio: bytes) -> dict[str, Any]:
        import httpx

        response = httpx.post(
            self.api + "/api/chat/voice",
            data={"user_id": user},
            files={"file": ("note.ogg", audio, "audio/ogg")},
            headers=self.headers,
            timeout=60,
        )
        if response.status_code not in (200, 202):
            raise RuntimeError(f"POST /api/chat/voice: {response.status_code} {response.text}")
        return dict(response.json())

    def chat(self, user: str, text: str) -> dict[str, Any]:
        return self.wait_done(self.post(user, text)["task_id"])

    def history(self, user: str) -> list[dict[str, Any]]:
        status, body = call("GET", f"{self.api}/api/users/{user}/history", headers=self.headers)
        if status != 200:
            raise RuntimeError(f"history: {status} {body}")
        return list(body)

    def latest_task(self, user: str, chat_id: str) -> dict[str, Any] | None:
        url = f"{self.api}/api/users/{user}/latest-task?chat_id={chat_id}"
        status, body = call("GET", url, headers=self.headers)
        return dict(body) if status == 200 else None
