"""What each compose service may hold: its secrets, its variables, its mounts. One list, read by
the deployment check (on running containers) and by the fast tests (on docker-compose.yml)."""

from __future__ import annotations

from shared.config import BotSettings

# The secrets of `.env`; each reaches only the services listed for it in NEEDS.
SECRETS = (
    "API_KEY",
    "BOT_API_KEY",
    "TELEGRAM_BOT_TOKEN",
    "DASHBOARD_PASSWORD",
    "REDIS_PASSWORD",
    "OPENAI_API_KEY",
)
NEEDS: dict[str, frozenset[str]] = {
    "redis": frozenset({"REDIS_PASSWORD"}),
    "setup": frozenset({"REDIS_PASSWORD"}),  # inside REDIS_URL
    "api": frozenset({"API_KEY", "BOT_API_KEY", "REDIS_PASSWORD"}),
    "worker": frozenset({"REDIS_PASSWORD", "OPENAI_API_KEY"}),
    "bot": frozenset({"BOT_API_KEY", "TELEGRAM_BOT_TOKEN"}),
    "dashboard": frozenset({"REDIS_PASSWORD", "DASHBOARD_PASSWORD"}),
}
# The services that read all of `.env` (and blank the secrets that are not theirs); every other
# one is handed only the variables named here, whatever `.env` holds.
CORE = frozenset({"setup", "api", "worker"})
VARIABLES: dict[str, frozenset[str]] = {
    "redis": frozenset({"REDIS_PASSWORD"}),
    "bot": frozenset({name.upper() for name in BotSettings.model_fields} - {"API_KEY"} | {"LOG_LEVEL"}),
    "dashboard": frozenset({"RQ_DASHBOARD_REDIS_URL", "RQ_DASHBOARD_USERNAME", "RQ_DASHBOARD_PASSWORD"}),
}
# Where each service's container mounts something: the core the data folder, Redis its own volume,
# the bot and the dashboard nothing at all.
MOUNTS: dict[str, frozenset[str]] = {
    "redis": frozenset({"/data"}),
    "setup": frozenset({"/app/data"}),
    "api": frozenset({"/app/data"}),
    "worker": frozenset({"/app/data"}),
    "bot": frozenset(),
    "dashboard": frozenset(),
}
