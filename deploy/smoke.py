"""The VPS path, run for real: the compose deployment on a Docker engine, checked as a user meets it.

`make deploy-check` (as root). It makes sure a Docker engine runs (installing Debian's `docker.io`
and `docker-compose` and starting `dockerd` when missing), builds the image, and then:
1. upgrades a deployment of the previous release (its data written by that image) to this one;
2. deploys a fresh clone made as root with the README's commands, and checks the chat, the
   dashboard, Redis's isolation, restarts, two workers, the bot against a fake Bot API, each
   container's user, and an offline `setup`.
Every check prints its figure; the last line counts them. What the check made is removed at the
end, and `dockerd` is stopped again if the check started it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from deploy import privilege
from deploy.engine import Engine, compose_command, run
from deploy.http import basic_auth, call, wait_until
from deploy.stack import Deployment, docker, free_port

log = logging.getLogger("deploy.smoke")

ROOT = Path(__file__).resolve().parent.parent
# The last release whose image ran as uid 10001 without an entrypoint (its operators had to
# `chown -R 10001 data` by hand): the upgrade starts from the data directory it wrote.
PREVIOUS_RELEASE = "8415309"
MODELS = ROOT / "data" / "models"
# The previous release's default model, and this one's for this machine (its record beside it), and
# the speech model: containers have no internet here, so `make model` fetched them on the host.
PREVIOUS_MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"
APP_UID = 10001


class Checks:
    def __init__(self) -> None:
        self.passed = 0
        self.failed: list[str] = []

    def __call__(self, name: str, ok: bool, figure: str = "") -> bool:
        print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + figure if figure else ''}", flush=True)
        if ok:
            self.passed += 1
        else:
            self.failed.append(name)
        return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--previous", default=PREVIOUS_RELEASE, help="release to upgrade from")
    parser.add_argument("--keep", action="store_true", help="keep images and the engine (faster reruns)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if os.geteuid() != 0:
        print("The deployment check runs Docker: run it as root.", file=sys.stderr)
        return 2
    models = _models()
    missing = [str(path) for path in models if not path.exists()]
    if missing:
        print(f"{', '.join(missing)} missing: `make model` and `make test-models` first.", file=sys.stderr)
        return 2
    checks = Checks()
    figures: dict[str, str] = {}
    compose: list[str] = []
    engine = Engine()
    workdir = Path(tempfile.mkdtemp(prefix="deploy-check-", dir="/var/tmp"))
    try:
        engine.start(workdir / "dockerd.log")
        engine.base_images()
        compose = compose_command()
        checks("compose tool", True, " ".join(compose))
        new_rev = run(["git", "-C", str(ROOT), "rev-parse", "HEAD"]).stdout.strip()
        clone = _clone(workdir / "ai_assistant", new_rev)
        started = time.monotonic()
        _build(clone, new_rev, "ai-assistant:latest")
        engine.images.append("ai-assistant:latest")
        checks("image built", True, f"{time.monotonic() - started:.0f} s")
        _build(clone, args.previous, "ai-assistant:previous")
        engine.images.append("ai-assistant:previous")
        size = int(run(["docker", "image", "inspect", "-f", "{{.Size}}", "ai-assistant:latest"]).stdout)
        checks("image size", size > 0, f"{size / 1e6:.0f} MB")
        figures["image"] = f"{size / 1e6:.0f} MB"
        _upgrade(checks, compose, workdir, args.previous, new_rev, models)
        figures.update(_fresh_clone(checks, compose, workdir, new_rev, models))
        _data_ownership(checks, workdir)
        _offline_setup(checks, workdir)
    except Exception as exc:  # every failure is reported as a failed check, then counted
        log.exception("the deployment check stopped")
        checks("deployment check ran to the end", False, f"{type(exc).__name__}: {exc}")
    finally:
        if not args.keep:
            engine.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    if not checks.failed:
        _record(figures, compose_name=" ".join(compose))
    print(f"deploy: {checks.passed} passed, {len(checks.failed)} failed")
    return 1 if checks.failed else 0


def _record(figures: dict[str, str], compose_name: str) -> None:
    """The image's size and each container's memory, for bench/results.md (which includes this file)."""
    lines = [
        "## The compose deployment (`make deploy-check`)",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} with {compose_name}: the image "
        f"is {figures.pop('image')}; resident memory of each container after the checks' answers "
        "(the fake Bot API is the check's own):",
        "",
        "| container | memory |",
        "|---|---|",
        *[f"| {name} | {value} |" for name, value in figures.items()],
        "",
    ]
    (ROOT / "bench" / "deploy-results.md").write_text("\n".join(lines))


def _clone(target: Path, rev: str) -> Path:
    run(["git", "clone", "--quiet", "--no-checkout", str(ROOT), str(target)])
    run(["git", "-C", str(target), "checkout", "--quiet", rev])
    return target


def _build(clone: Path, rev: str, tag: str) -> None:
    """Build `rev`'s image (the build stage of an unchanged lock file comes from the cache)."""
    log.info("building %s from %s", tag, rev)
    with tempfile.TemporaryDirectory(dir="/var/tmp") as context:
        run(["git", "-C", str(clone), "worktree", "add", "--detach", "--force", context, rev])
        try:
            dockerfile = Path(context) / "Dockerfile"
            dockerfile.write_text(without_amx(dockerfile.read_text(), _amx_guard()))
            run(["docker", "build", "--network=host", "-t", tag, context], timeout=3600)
        finally:
            run(["git", "-C", str(clone), "worktree", "remove", "--force", context])


# The build step that compiles llama.cpp, in every release's Dockerfile.
_PIP_STEP = "RUN /opt/venv/bin/pip install"


def _amx_guard() -> str:
    """This release's guard against llama.cpp's AMX kernels, as its Dockerfile writes it.

    Read from the Dockerfile so the flags live in one place (the Makefile says why they exist).
    """
    text = (ROOT / "Dockerfile").read_text()
    start = text.index('RUN case "$(uname -m)"')
    end = text.index("/opt/venv/bin/pip install", start)
    return text[start:end]


def without_amx(dockerfile: str, guard: str) -> str:
    """`dockerfile` with its llama.cpp build step behind `guard` (an older release's has none).

    Releases before the guard compile llama.cpp with its AMX kernels, whose workers crash on a CPU
    that reports AMX (the upgrade check's previous release among them). A Dockerfile with no such
    step is an error rather than an unguarded build.
    """
    if "-mno-amx-tile" in dockerfile:
        return dockerfile
    if dockerfile.count(_PIP_STEP) != 1:
        raise ValueError("the Dockerfile has no single llama.cpp build step to guard")
    return dockerfile.replace(_PIP_STEP, guard + "/opt/venv/bin/pip install")


def _write_env(directory: Path, telegram_base: str = "") -> dict[str, str]:
    """The `.env` of the README's "Deploy on a VPS", with ports of this machine's choosing."""
    env = {
        "API_KEY": secrets.token_hex(24),
        "BOT_API_KEY": secrets.token_hex(24),
        "REDIS_PASSWORD": secrets.token_hex(24),
        "DASHBOARD_PASSWORD": secrets.token_hex(24),
        "TELEGRAM_BOT_TOKEN": "4242:DEPLOYCHECK",
        # Unused with the local model; here so the check sees that only the worker holds it.
        "OPENAI_API_KEY": secrets.token_hex(24),
        # The fake Telegram user the bot check writes as (others would first ask an admin).
        "TELEGRAM_ALLOWED_USERS": "1001",
        "API_PORT": str(free_port()),
        "DASHBOARD_PORT": str(free_port()),
    }
    if telegram_base:
        env["TELEGRAM_API_BASE"] = telegram_base
    path = directory / ".env"
    path.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    path.chmod(0o600)
    return env


def _models() -> list[Path]:
    from shared.config import ModelSettings
    from shared.model_files import record_path

    default = ModelSettings(_env_file=None, models_dir=MODELS).resolved_path()
    return [MODELS / PREVIOUS_MODEL, default, record_path(default), MODELS / "speech" / "whisper-base"]


def _place_models(directory: Path, models: list[Path]) -> None:
    # Containers have no internet here; on a VPS `setup` would fetch these same files. Copied with
    # their times, so the hash records still match and nothing is hashed again.
    for source in models:
        target = directory / "data" / "models" / source.relative_to(MODELS)
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)


def _upgrade(
    checks: Checks, compose: list[str], workdir: Path, previous: str, new_rev: str, models: list[Path]
) -> None:
    """The previous release's deployment, updated with `git pull && docker compose up -d`."""
    directory = _clone(workdir / "upgrade", previous)
    env = _write_env(directory)
    _place_models(directory, models)
    # What an operator of the previous release had to do by hand for it to start at all.
    run(["chown", "-R", f"{APP_UID}:{APP_UID}", str(directory / "data")])
    override = workdir / "previous-image.yml"
    override.write_text(
        "services:\n"
        + "".join(
            f"  {s}:\n    image: ai-assistant:previous\n" for s in ("setup", "api", "worker", "dashboard")
        )
    )
    stack = Deployment(compose, directory, "aiupgrade", env, extra_files=[override])
    try:
        stack.up()
        answered = stack.chat("upgrade-user", "Say hello to the old release.")
        before = stack.history("upgrade-user")
        checks("previous release answers", answered["status"] == "finished", f"{len(before)} exchange(s)")
        stack.compose("down")
        run(["git", "-C", str(directory), "checkout", "--quiet", new_rev])
        stack.extra_files = []
        stack.up()
        after = stack.history("upgrade-user")
        checks(
            "upgrade keeps the conversations",
            [(e["question"], e["answer"]) for e in after] == [(e["question"], e["answer"]) for e in before],
            f"{len(after)} exchange(s) served by the new image",
        )
        checks("upgrade migrates", stack.exit_code("setup") == 0, "setup exited 0")
        answered = stack.chat("upgrade-user", "And hello to the new one.")
        checks("upgraded stack answers", answered["status"] == "finished", answered["answer"][:40])
        owner = directory.joinpath("data", "ai_assistant.db").stat().st_uid
        checks("upgraded data keeps its owner", owner == APP_UID, f"uid {owner}")
    finally:
        stack.compose("down", "-v")


def _fresh_clone(
    checks: Checks, compose: list[str], workdir: Path, new_rev: str, models: list[Path]
) -> dict[str, str]:
    """A clone made as root, the README's `.env`, `docker compose up -d`: everything a user meets."""
    directory = _clone(workdir / "fresh", new_rev)
    env = _write_env(directory, telegram_base="http://fake-telegram:8081")
    _place_models(directory, models)
    fake_port = free_port()
    override = workdir / "fake-telegram.yml"
    override.write_text(
        "services:\n"
        "  fake-telegram:\n"
        "    image: ai-assistant:latest\n"
        "    profiles: [telegram]\n"
        '    command: ["python", "-m", "fakes.telegram", "0.0.0.0", "8081"]\n'
        "    volumes: [./fakes:/app/fakes:ro]\n"
        f'    ports: ["127.0.0.1:{fake_port}:8081"]\n'
    )
    stack = Deployment(compose, directory, "aifresh", env, extra_files=[override])
    try:
        started = time.monotonic()
        stack.up()
        checks("fresh clone comes up", True, f"{time.monotonic() - started:.0f} s to a healthy gateway")
        checks("setup succeeded", stack.exit_code("setup") == 0, "migrations and model in place")
        started = time.monotonic()
        answered = stack.chat("alice", "What is the capital of France?")
        checks(
            "a chat is answered by the default model",
            answered["status"] == "finished" and "paris" in answered["answer"].lower(),
            f"{time.monotonic() - started:.2f} s, {answered['usage'].get('completion_tokens')} tokens",
        )
        _voice(checks, stack)
        owners = {p.stat().st_uid for p in (directory / "data").rglob("*")} | {
            (directory / "data").stat().st_uid
        }
        checks("root-owned data handed to the service user", owners == {APP_UID}, f"owners {sorted(owners)}")
        _dashboard(checks, stack)
        _redis_isolation(checks, stack)
        _restarts(checks, stack)
        _two_workers(checks, stack)
        _bot(checks, stack, fake_port)
        _least_privilege(checks, stack)
        _users(checks, stack)
        memory = stack.memory()
        checks(
            "memory per container",
            bool(memory),
            ", ".join(f"{name} {mb:.0f} MB" for name, mb in memory.items())
            + f"; total {sum(memory.values()):.0f} MB",
        )
        return {name: f"{mb:.0f} MB" for name, mb in memory.items()} | {
            "**all**": f"**{sum(memory.values()):.0f} MB**"
        }
    finally:
        stack.compose("--profile", "telegram", "down", "-v")


def _voice(checks: Checks, stack: Deployment) -> None:
    """A voice note heard inside the image (its speech libraries, the bundled model) and answered."""
    from fakes import speech

    started = time.monotonic()
    task = stack.post_voice("alice", speech.speak("What is the capital of France?"))
    done = stack.wait_done(task["task_id"])
    words = str((done.get("voice") or {}).get("transcript") or "")
    checks(
        "a voice note is heard and answered",
        done["status"] == "finished" and "capital" in words.lower() and bool(done["answer"]),
        f"{time.monotonic() - started:.2f} s: {words!r}",
    )


def _dashboard(checks: Checks, stack: Deployment) -> None:
    url = f"http://127.0.0.1:{stack.env['DASHBOARD_PORT']}"
    status, _ = wait_until("the dashboard", lambda: call("GET", url + "/"), 60)
    checks("dashboard refuses without the password", status == 401, f"HTTP {status}")
    auth = basic_auth("admin", stack.env["DASHBOARD_PASSWORD"])
    status, _ = call("GET", url + "/", headers=auth)
    checks("dashboard opens with the password", status == 200, f"HTTP {status}")
    task_id = stack.history("alice")[0]["task_id"]
    status, body = call("POST", f"{url}/job/{task_id}/delete", headers=auth)
    refused = status == 403 or (isinstance(body, dict) and body.get("status") == "DISABLED")
    checks("dashboard has no delete action", refused, f"HTTP {status}")
    status, _ = call("POST", f"{url}/job/{task_id}/requeue", headers=auth)
    get_status, _ = call("GET", f"{url}/requeue/chat", headers=auth)
    checks("dashboard has no requeue action", status == get_status == 403, f"HTTP {status}, {get_status}")


def _redis_isolation(checks: Checks, stack: Deployment) -> None:
    published = stack.inspect("redis", "{{json .NetworkSettings.Ports}}")
    checks("Redis publishes no port", "HostPort" not in published, published)
    result = stack.compose("exec", "-T", "redis", "redis-cli", "ping", check=False)
    checks(
        "Redis refuses a client without the password",
        "NOAUTH" in result.stdout + result.stderr,
        (result.stdout + result.stderr).strip()[:60],
    )


def _restarts(checks: Checks, stack: Deployment) -> None:
    """A task queued while no worker runs survives `restart` and `down` + `up`, as do conversations."""
    before = stack.history("alice")
    stack.compose("stop", "worker")
    queued = [stack.post("alice", "Name a colour.")["task_id"], stack.post("bob", "Name a fruit.")["task_id"]]
    stack.compose("restart", "redis", "api")
    stack.wait_workers(0)
    states = [stack.status(t)["status"] for t in queued]
    checks("queued tasks survive `restart`", states == ["queued", "queued"], f"{states}")
    stack.compose("down")
    stack.up()
    done = [stack.wait_done(t) for t in queued]
    checks(
        "queued tasks survive `down` + `up` and are answered",
        all(t["status"] == "finished" for t in done),
        f"{[t['status'] for t in done]}",
    )
    after = stack.history("alice")
    kept = [(e["question"], e["answer"]) for e in after[: len(before)]] == [
        (e["question"], e["answer"]) for e in before
    ]
    checks("conversations survive `down` + `up`", kept, f"{len(after)} exchange(s) for alice")


def _two_workers(checks: Checks, stack: Deployment) -> None:
    stack.compose("up", "-d", "--scale", "worker=2")
    health = stack.wait_workers(2)
    checks("`--scale worker=2` runs two workers", health["workers"] == 2, f"{health['workers']} workers")
    users = ("carol", "dave")
    tasks = {
        u: [stack.post(u, f"Message {i} from {u}: count to {i}.")["task_id"] for i in (1, 2, 3)]
        for u in users
    }
    in_order = True
    for user, ids in tasks.items():
        done = [stack.wait_done(t) for t in ids]
        in_order &= all(d["status"] == "finished" for d in done)
        in_order &= all(done[i]["finished_at"] <= done[i + 1]["started_at"] for i in range(len(done) - 1))
        questions = [e["question"] for e in stack.history(user)]
        in_order &= questions == [f"Message {i} from {user}: count to {i}." for i in (1, 2, 3)]
    checks("two workers answer each conversation in order", in_order, "2 users × 3 messages")


def _bot(checks: Checks, stack: Deployment, fake_port: int) -> None:
    fake = f"http://127.0.0.1:{fake_port}"
    stack.compose("--profile", "telegram", "up", "-d")
    wait_until("the fake Bot API", lambda: call("GET", f"{fake}/control/chats/1001")[0] == 200 or None, 60)
    call("POST", f"{fake}/control/messages", {"text": "Hello from Telegram", "user_id": 1001})
    task = wait_until(
        "the bot's task",
        lambda: t if (t := stack.latest_task("tg:1001", "1001")) and t["status"] == "finished" else None,
        180,
    )
    wanted = "".join(ch for ch in task["answer"] if ch.isalnum())[:24]

    def delivered() -> str | None:
        messages = call("GET", f"{fake}/control/chats/1001")[1]
        texts = ["".join(ch for ch in m["text"] if ch.isalnum()) for m in messages]
        return next((t for t in texts if wanted in t), None)

    wait_until("the answer in Telegram", delivered, 60)
    checks(
        "the bot answers through the gateway", True, f"answer delivered ({len(task['answer'])} characters)"
    )


def _least_privilege(checks: Checks, stack: Deployment) -> None:
    """Every running container, as the engine sees it: each secret only where deploy/privilege.py
    says, the bot, the dashboard and Redis no variable beyond their own, each service only its
    mounts, and no secret on any command line (the engine's record of it, and `ps` on the host)."""
    secrets_of = {name: stack.env[name] for name in privilege.SECRETS if stack.env.get(name)}
    leaks: list[str] = []
    extra: list[str] = []
    mounts: list[str] = []
    shown: list[str] = []
    seen = []
    for container in stack.containers().values():
        info = json.loads(docker("inspect", container))[0]
        service = info["Config"]["Labels"].get("com.docker.compose.service")
        if service not in privilege.NEEDS:
            continue  # the check's own fake Bot API
        seen.append(service)
        image_env = set(json.loads(docker("image", "inspect", "-f", "{{json .Config.Env}}", info["Image"])))
        added = dict(e.split("=", 1) for e in info["Config"]["Env"] if e not in image_env)
        for secret, value in secrets_of.items():
            if secret not in privilege.NEEDS[service] and any(value in v for v in added.values()):
                leaks.append(f"{service} holds {secret}")
        if service not in privilege.CORE:
            extra += [f"{service}: {v}" for v in sorted(set(added) - privilege.VARIABLES[service])]
        found = {m["Destination"] for m in info["Mounts"]}
        if found != privilege.MOUNTS[service]:
            mounts.append(f"{service} mounts {sorted(found)}")
        lines = json.dumps(
            [info["Path"], info["Args"], info["Config"].get("Cmd"), info["Config"].get("Healthcheck")]
        )
        shown += [f"{service}: {s}" for s, v in secrets_of.items() if v in lines]
    host = run(["ps", "-eo", "args"]).stdout
    shown += [f"host ps: {s}" for s, v in secrets_of.items() if v in host]
    every = set(privilege.NEEDS) - {"setup"}  # setup has exited by now; tests/test_deploy.py reads it
    checks(
        "each service holds only its own secrets",
        not leaks and set(seen) >= every,
        ", ".join(leaks) or f"{len(seen)} containers of {', '.join(sorted(set(seen)))}",
    )
    checks(
        "the bot, the dashboard and Redis hold only their own variables",
        not extra,
        ", ".join(extra) or "none else",
    )
    checks(
        "each service mounts only what it needs", not mounts, ", ".join(mounts) or "bot and dashboard: none"
    )
    checks(
        "no secret on a command line", not shown, ", ".join(shown) or f"{len(secrets_of)} secrets looked for"
    )


def _users(checks: Checks, stack: Deployment) -> None:
    uids = stack.process_uids()
    root = sorted(name for name, found in uids.items() if 0 in found)
    checks(
        "no container runs as root",
        bool(uids) and not root,
        ", ".join(f"{n} {sorted(u)}" for n, u in uids.items()),
    )


def _data_ownership(checks: Checks, workdir: Path) -> None:
    """An operator's own ./data keeps its owner: the services run as that user."""
    data = workdir / "operator-data"
    (data / "models").mkdir(parents=True)
    (data / "models" / "leftover").write_text("written by root")
    os.chown(data, 1000, 1000)
    command = "id -u && touch /app/data/new-file"
    result = run(
        ["docker", "run", "--rm", "-v", f"{data}:/app/data", "ai-assistant:latest", "sh", "-c", command]
    )
    owners = {p.stat().st_uid for p in data.rglob("*")}
    checks(
        "an operator-owned ./data keeps its owner",
        result.stdout.strip() == "1000" and owners == {1000},
        f"ran as uid {result.stdout.strip()}, files owned by {sorted(owners)}",
    )


def _offline_setup(checks: Checks, workdir: Path) -> None:
    data = workdir / "offline-data"
    data.mkdir()
    result = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            f"{data}:/app/data",
            "ai-assistant:latest",
            "python",
            "-m",
            "stack.model",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    said = result.stderr.strip()
    clear = (
        result.returncode != 0 and "MODEL_PATH" in said and "data/models/" in said and "Traceback" not in said
    )
    checks("offline setup fails with one clear sentence", clear, said[-200:])


if __name__ == "__main__":
    sys.exit(main())
