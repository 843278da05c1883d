"""What each inline button the bot sends carries back when pressed, typed: one aiogram
`CallbackData` class per kind of button. Packed as `prefix:field:…` (at most 64 bytes, Telegram's
limit) and parsed back by the handler's filter, so no handler splits strings of its own."""

from __future__ import annotations

import enum

from aiogram.filters.callback_data import CallbackData


class Verdict(enum.StrEnum):
    ALLOW = "allow"
    BLOCK = "block"


class AccessDecision(CallbackData, prefix="access"):
    """An admin's Allow / Deny under a request for access."""

    verdict: Verdict
    user_id: int


class ModeChoice(CallbackData, prefix="mode"):
    key: str


class Regenerate(CallbackData, prefix="regen"):
    task_id: str


class NewConversation(CallbackData, prefix="new"):
    pass


class Resend(CallbackData, prefix="resend"):
    """ "Try again" under a message that could not be sent: a token only its writer's press redeems."""

    token: str


class SwitchChat(CallbackData, prefix="chat"):
    conversation_id: int


class DeleteChat(CallbackData, prefix="chatdel"):
    conversation_id: int


class DeleteDocument(CallbackData, prefix="docdel"):
    document_id: str
