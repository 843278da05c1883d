"""docker-compose.yml and the Dockerfile, checked against the project (no Docker engine runs here)."""

from __future__ import annotations

import importlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy import privilege
from shared.config import QueueSettings
from tests.conftest import ROOT, wait_for

COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
APP_SERVICES = ["setup", "api", "worker", "bot", "dashboard"]


def _modules(command: list[str]) -> list[str]:
    """The Python modules a service command runs (`python -m X`, including inside `sh -c`)."""
    text = " ".join(command)
    return re.findall(r"python -m ([\w.]+)", text)


def test_every_service_command_names_code_that_exists() -> None:
    for name in APP_SERVICES:
        command = SERVICES[name]["command"]
        modules = _modules(command)
        assert modules, f"{name}: no python -m command"
        for module in modules:
            assert importlib.util.find_spec(module) is not None, f"{name}: no module {module}"
    api = SERVICES["api"]["command"]
    factory = api[api.index("--factory") + 1]
    module, attribute = factory.split(":")
    assert callable(getattr(importlib.import_module(module), attribute))


def test_the_dashboard_options_exist_in_the_installed_rq_dashboard() -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "stack.dashboard", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for option in [o for o in SERVICES["dashboard"]["command"] if o.startswith("--")]:
        assert option in help_text
    env = SERVICES["dashboard"]["environment"]
    assert {"RQ_DASHBOARD_USERNAME", "RQ_DASHBOARD_PASSWORD", "RQ_DASHBOARD_REDIS_URL"} <= set(env)


def test_the_setup_command_runs(tmp_path: Path) -> None:
    """`setup` migrates and fetches the model; both steps run here as they would in the container."""
    (command,) = [c for c in SERVICES["setup"]["command"] if "python -m" in c]
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
        # Nothing chosen: the default for this machine, and the speech model (fetched by `make test`).
        "MODELS_DIR": str(ROOT / "data" / "models"),
    }
    result = subprocess.run(["sh", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "Database is up to date." in result.stdout
    assert "the default: this machine has" in result.stdout and "Model ready:" in result.stdout
    assert (tmp_path / "db.sqlite").is_file()


def test_every_variable_is_documented_in_env_example() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text))
    documented = set(re.findall(r"^#?([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
    assert used, "no variables found"
    assert used <= documented, used - documented


def test_secrets_are_required_and_come_from_env() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    for secret in ("REDIS_PASSWORD", "API_KEY", "DASHBOARD_PASSWORD"):
        assert re.search(rf"\$\{{{secret}:\?[^}}]+\}}", text), f"{secret} is not required"
    assert "TELEGRAM_BOT_TOKEN" not in text or SERVICES["bot"]["profiles"] == ["telegram"]
    for name in APP_SERVICES:
        assert (SERVICES[name].get("env_file") == ".env") == (name in privilege.CORE), name


def test_ports_are_loopback_only_and_match_the_commands() -> None:
    assert "ports" not in SERVICES["redis"]
    for name, port in (("api", "8000"), ("dashboard", "9181")):
        (published,) = SERVICES[name]["ports"]
        assert published.startswith("127.0.0.1:")
        assert published.endswith(f":{port}")
        command = SERVICES[name]["command"]
        assert command[command.index("--port") + 1] == port


def test_redis_persists_never_evicts_and_keeps_its_password_off_every_command_line(
    tmp_path: Path,
) -> None:
    """The service's own command and health check, run here by a shell against a real redis-server:
    the password reaches the server through a config file, and the health check through
    REDISCLI_AUTH; neither command line as compose writes it holds the value (only `$$`, which the
    container's shell expands)."""
    from stack.redis_server import find_redis_server, free_port

    redis = SERVICES["redis"]
    assert redis["user"] == "redis"
    command = redis["command"]
    assert command[:2] == ["sh", "-c"]
    script = command[2]
    for option in ("--appendonly yes", "--appendfsync everysec", "--maxmemory-policy noeviction"):
        assert option in script
    (health,) = [t for t in redis["healthcheck"]["test"] if "redis-cli" in t]
    for line in (script, health):
        assert "${REDIS_PASSWORD" not in line and " -a " not in line and "--requirepass" not in line
    assert "redis-data:/data" in redis["volumes"]

    port, password = free_port(), "compose 'quoted' pass"
    conf = tmp_path / "redis.conf"
    server_script = script.replace("$$", "$").replace("/tmp/redis.conf", str(conf))
    server_script += f" --port {port} --dir {tmp_path} --save ''"
    # The redis-server these tests use, and the redis-cli beside it.
    env = {"PATH": f"{Path(find_redis_server()).parent}:/usr/bin:/bin", "REDIS_PASSWORD": password}
    server = subprocess.Popen(["sh", "-c", server_script], env=env)
    try:
        ping = health.replace("$$", "$").replace("redis-cli", f"redis-cli -p {port}")
        wait_for(
            lambda: subprocess.run(["sh", "-c", ping], env=env).returncode == 0, timeout=30, interval=0.1
        )
        assert oct(conf.stat().st_mode & 0o777) == "0o600"
        no_password = subprocess.run(
            ["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True, env={"PATH": env["PATH"]}
        )
        assert "NOAUTH" in no_password.stdout + no_password.stderr
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_volumes_paths_and_dependencies_fit() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "WORKDIR /app" in dockerfile
    # No VOLUME: a service that mounts nothing (the bot, the dashboard) gets no anonymous volume.
    assert "\nVOLUME" not in dockerfile
    for name in APP_SERVICES:
        service = SERVICES[name]
        mounts = {v.split(":")[1] for v in service.get("volumes", [])}
        assert mounts == privilege.MOUNTS[name], name
        environment = service.get("environment") or {}
        if name in privilege.CORE:
            assert environment["DATABASE_URL"].startswith("${DATABASE_URL:-sqlite:////app/data/")
        else:
            assert not {"DATABASE_URL", "REDIS_URL", "MODELS_DIR"} & set(environment), name
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in SERVICES
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[dependency], dependency
    assert SERVICES["worker"]["environment"]["MODELS_DIR"].startswith("/app/data")
    assert {v.split(":")[1] for v in SERVICES["redis"]["volumes"]} == privilege.MOUNTS["redis"]


def test_a_stopping_worker_may_finish_its_answer() -> None:
    grace = SERVICES["worker"]["stop_grace_period"]
    assert grace.endswith("s")
    assert int(grace[:-1]) > QueueSettings.model_fields["job_timeout_seconds"].default


@pytest.mark.parametrize(
    "directory", re.findall(r"^COPY (\w+) ", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
)
def test_the_dockerfile_copies_what_exists(directory: str) -> None:
    assert (ROOT / directory).is_dir()


def test_the_image_is_multi_stage_and_drops_root_in_its_entrypoint() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.count("\nFROM ") + dockerfile.startswith("FROM ") >= 2
    assert "AS build" in dockerfile and "COPY --from=build" in dockerfile
    assert 'ENTRYPOINT ["docker-entrypoint"]' in dockerfile
    assert "COPY deploy/entrypoint.sh /usr/local/bin/docker-entrypoint" in dockerfile
    entrypoint = (ROOT / "deploy" / "entrypoint.sh").read_text()
    # Every path through the script ends in an exec: as the caller (not root), or via setpriv.
    assert entrypoint.rstrip().splitlines()[-1].startswith("exec setpriv --reuid=")
    assert "-DLLAVA_BUILD=OFF" in dockerfile
    runtime = dockerfile.split("COPY --from=build", 1)[1]
    assert "build-essential" not in runtime
    # The image's processes cap glibc's heaps as `make run` does (stack.supervisor).
    from stack.supervisor import MALLOC_ARENAS

    assert f"MALLOC_ARENA_MAX={MALLOC_ARENAS} " in runtime


def test_the_previous_release_is_built_without_amx_kernels_as_this_one_is() -> None:
    from deploy import smoke

    guard = smoke._amx_guard()
    assert "-mno-amx-tile" in guard and guard.startswith("RUN case")
    previous = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{smoke.PREVIOUS_RELEASE}:Dockerfile"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "-mno-amx" not in previous
    guarded = smoke.without_amx(previous, guard)
    step = guarded[guarded.index('RUN case "$(uname -m)"') :].split("\n\n")[0]
    assert step.endswith("/opt/venv/bin/pip install -r /tmp/requirements.txt")
    # The guarded step is one valid shell command, as docker's RUN hands it to sh.
    script = step.removeprefix("RUN ").replace("\\\n", " ")
    subprocess.run(["sh", "-n", "-c", script], check=True)
    # This release's own Dockerfile is left as it is; one without a build step is refused.
    current = (ROOT / "Dockerfile").read_text()
    assert smoke.without_amx(current, guard) == current
    with pytest.raises(ValueError):
        smoke.without_amx("FROM python:3.11-slim-bookworm\n", guard)


@pytest.mark.slow
def test_every_long_running_command_starts(
    tmp_path: Path, db_url: str, queue_settings: QueueSettings, gateway_settings: Any
) -> None:
    """Each service's own command line, run as compose would (its environment, our Redis and DB)."""
    import os
    import time

    import httpx

    from fakes.telegram import FakeTelegram
    from stack.redis_server import free_port
    from tests.conftest import API_KEY, TINY_MODEL

    telegram = FakeTelegram()
    telegram.start()
    api_port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("API_", "MODEL_", "TELEGRAM_"))},
        "PYTHONPATH": str(ROOT),
        "REDIS_URL": queue_settings.redis_url,
        "QUEUE_NAME": queue_settings.queue_name,
        "DATABASE_URL": db_url,
        "API_KEY": API_KEY,
        "MODEL_PATH": str(TINY_MODEL),
        "GATEWAY_URL": f"http://127.0.0.1:{api_port}",
        "TELEGRAM_BOT_TOKEN": "4242:COMPOSE",
        "TELEGRAM_API_BASE": telegram.base_url,
        "RQ_DASHBOARD_REDIS_URL": queue_settings.redis_url,
        "RQ_DASHBOARD_USERNAME": "admin",
        "RQ_DASHBOARD_PASSWORD": "compose-test",
    }
    processes: dict[str, subprocess.Popen[bytes]] = {}
    logs: list[Any] = []
    try:
        for name in ("api", "worker", "bot", "dashboard"):
            command = list(SERVICES[name]["command"])
            if name == "api":
                command[command.index("--port") + 1] = str(api_port)
                command[command.index("--host") + 1] = "127.0.0.1"
            if name == "dashboard":
                command[command.index("--port") + 1] = str(free_port())
                command[command.index("--bind") + 1] = "127.0.0.1"
            command[0] = sys.executable if command[0] == "python" else command[0]
            logs.append(open(tmp_path / f"{name}.log", "wb"))  # noqa: SIM115 - closed at the end
            processes[name] = subprocess.Popen(
                command, cwd=tmp_path, env=env, stdout=logs[-1], stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{api_port}/health", timeout=2).json()
                if health.get("workers") == 1 and telegram.called("getUpdates"):
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, {
                n: (tmp_path / f"{n}.log").read_text()[-500:] for n in processes
            }
            time.sleep(0.3)
        for name, process in processes.items():
            assert process.poll() is None, (name, (tmp_path / f"{name}.log").read_text()[-1000:])
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            process.wait(timeout=30)
        for log in logs:
            log.close()
        telegram.stop()


def test_an_offline_setup_fails_with_one_sentence_naming_the_way_out(tmp_path: Path) -> None:
    """No package index reachable (as in a container without internet): one clear line, no traceback."""
    from stack.redis_server import free_port

    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "MODELS_DIR": str(tmp_path / "models"),
        # A closed port on loopback: pip fails at once, as with no network at all.
        "PIP_INDEX_URL": f"http://127.0.0.1:{free_port()}/simple",
        "PIP_FIND_LINKS": "",
        "PIP_CONFIG_FILE": "/dev/null",
    }
    result = subprocess.run(
        [sys.executable, "-m", "stack.model"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    said = result.stderr.strip()
    assert len(said.splitlines()) == 1 and "Traceback" not in said
    assert "MODEL_PATH" in said and "data/models/" in said
    assert not (tmp_path / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf").exists()


def test_each_service_is_handed_only_its_own_secrets_and_variables() -> None:
    """The core reads .env (env_file) and blanks the secrets it has no use for; the bot and the
    dashboard read no .env and are handed their own variables only, the bot every one of its
    settings but the operator's key."""
    for name in APP_SERVICES:
        env = SERVICES[name].get("environment") or {}
        needs = privilege.NEEDS[name]
        if name in privilege.CORE:
            for secret in set(privilege.SECRETS) - needs:
                assert env.get(secret) == "", f"{name} would receive {secret}"
            assert "REDIS_PASSWORD" in env["REDIS_URL"]
            for secret in needs - {"REDIS_PASSWORD"}:
                assert env.get(secret, "").startswith(f"${{{secret}:"), f"{name} lacks {secret}"
        else:
            assert set(env) <= privilege.VARIABLES[name], set(env) - privilege.VARIABLES[name]
            given = {s for s in privilege.SECRETS if any(f"${{{s}:" in str(v) for v in env.values())}
            assert given == needs, (name, given)
    assert set(SERVICES["bot"]["environment"]) == privilege.VARIABLES["bot"]
    assert set(SERVICES["redis"]["environment"]) == privilege.VARIABLES["redis"]


def test_the_dashboard_is_read_only() -> None:
    from rq_dashboard.cli import make_flask_app

    import stack.dashboard  # noqa: F401 - installs the read-only guard

    client = make_flask_app(None, "admin", "pw", "").test_client()
    for method, path in [
        ("POST", "/job/abc/requeue"),
        ("GET", "/requeue/chat"),
        ("POST", "/requeue/chat"),
        ("POST", "/job/abc/delete"),
        ("POST", "/queue/chat/failed/empty"),
        ("POST", "/queue/chat/compact"),
    ]:
        assert client.open(path, method=method).status_code == 403, (method, path)
