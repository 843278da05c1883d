"""Who a person is to the gateway: the client's own id for them ("user id"), one spelling per kind.

A person's user id is the external string every route and table keys on (`User.user_id`); its
prefix says which face brought them: Telegram (the bot may act only for these), the web page (an
invite), or the OpenAI-compatible API with the operator's key. The gateway's integer row key and
Telegram's integer id are other things and are never called a user id alone.
"""

from __future__ import annotations

import enum


class Face(enum.StrEnum):
    TELEGRAM = "tg"
    WEB = "web"
    OPENAI = "openai"

    @property
    def prefix(self) -> str:
        return f"{self.value}:"


def telegram_user(telegram_id: int) -> str:
    return f"{Face.TELEGRAM.prefix}{telegram_id}"


def web_user(name: str) -> str:
    return f"{Face.WEB.prefix}{name}"


def openai_user(name: str | None) -> str:
    """The owner of /v1 conversations asked for with the operator's key (`user`, or the default)."""
    return f"{Face.OPENAI.prefix}{name or 'default'}"


def is_telegram(user_id: str) -> bool:
    return user_id.startswith(Face.TELEGRAM.prefix)


def telegram_id(user_id: str) -> str | None:
    """The Telegram id in a Telegram person's user id (as text), else None."""
    return user_id.removeprefix(Face.TELEGRAM.prefix) if is_telegram(user_id) else None


def telegram_message_key(chat_id: int, message_id: int) -> str:
    """The idempotency key of a Telegram message: the same message sent twice is one request."""
    return f"{Face.TELEGRAM.prefix}{chat_id}:{message_id}"
