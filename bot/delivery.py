"""Following a task from queue to answer, and showing it in Telegram within Telegram's limits.

In private chats the answer streams as a native draft (with a stop button); elsewhere, or when
drafts fail, a placeholder message is edited at most once per BOT_EDIT_INTERVAL_SECONDS. Flood
control (429) postpones updates and never loses the final answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any, TypeVar

from aiogram import Bot
from aiogram.enums import ChatAction, ChatType
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest, TelegramRetryAfter
from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    MessageEntity,
    ReplyParameters,
)
from pydantic import ValidationError

from bot.buttons import NewConversation, Regenerate
from bot.formatting import LIMIT, format_guarded, utf16_len
from bot.gateway import GatewayClient, GatewayRejected, GatewayUnavailable
from bot.texts import duration, failure, t
from shared.config import BotSettings
from shared.enums import FINAL_STATUSES, TaskStatus
from shared.identity import Face
from shared.schemas import DeliveryNote, Source, TaskOut

log = logging.getLogger(__name__)

_TYPING_EVERY = 4.5  # Telegram shows "typing" for about five seconds
_DRAFT_REFRESH = 20.0  # a draft vanishes after 30 s without news
_GATEWAY_PATIENCE = 120.0  # how long an unreachable gateway is retried before the user is told
_LONGEST_WAIT = 5.0  # the longest single wait for news from the gateway
_MAX_FLOOD_WAIT = 60.0
_TRANSCRIPTS_KEPT = 5000
T = TypeVar("T")


@dataclass
class Target:
    """Where a task's answer goes. Stored with the task, so a restarted bot can still deliver it."""

    chat: int
    lang: str
    private: bool
    reply_to: int | None = None
    placeholder: int | None = None
    thread: int | None = None  # the forum topic asked in, where answers go too
    transcript: int | None = None  # the message showing a voice note's words, once sent

    @classmethod
    def of(cls, message: Message, lang: str) -> Target:
        """Where an answer to `message` goes: its chat, its topic, as a reply to it."""
        return cls(
            chat=message.chat.id,
            lang=lang,
            private=message.chat.type == ChatType.PRIVATE,
            reply_to=message.message_id,
            thread=message.message_thread_id if message.is_topic_message else None,
        )

    @property
    def place(self) -> str:
        """The gateway's chat id: each chat, and each topic of a forum, keeps its own conversations."""
        return place_of(self.chat, self.thread)

    def meta(self) -> dict[str, Any]:
        """The task's client notes that bring a restarted bot back here (the whole note each time:
        the gateway merges it into what it has)."""
        return DeliveryNote(**asdict(self)).model_dump(exclude_none=True)

    def reply(self) -> ReplyParameters | None:
        """Answer as a reply to the user's message, or plainly if that message is gone."""
        if self.reply_to is None:
            return None
        return ReplyParameters(message_id=self.reply_to, allow_sending_without_reply=True)

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> Target | None:
        """Where the notes say to deliver; None for notes that are not the bot's (or are broken)."""
        try:
            note = DeliveryNote.model_validate(meta)
        except ValidationError:
            return None
        return cls(**note.model_dump())


def place_of(chat: int, thread: int | None) -> str:
    return f"{chat}/{thread}" if thread else str(chat)


def place(message: Message) -> str:
    """The gateway's chat id for where `message` was written (a forum topic has its own)."""
    return place_of(message.chat.id, message.message_thread_id if message.is_topic_message else None)


def answer_keyboard(lang: str, task_id: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=t(lang, "button_regenerate"), callback_data=Regenerate(task_id=task_id).pack()
                ),
                InlineKeyboardButton(text=t(lang, "button_new"), callback_data=NewConversation().pack()),
            ]
        ]
    )


def retry_keyboard(lang: str, callback_data: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=t(lang, "button_retry"), callback_data=callback_data)]]
    )


def progress_text(status: TaskOut, lang: str) -> str:
    """What the user sees while waiting: the place in the queue, then the answer as it grows."""
    if status.status == TaskStatus.QUEUED:
        position, eta = status.position or 1, status.estimated_wait_seconds
        if eta:
            return t(lang, "queued_eta", position=position, eta=duration(lang, eta))
        return t(lang, "queued", position=position)
    partial = (status.partial_text or "").strip()
    if status.voice is not None and status.voice.transcript is None:
        return t(lang, "listening")
    if not partial:
        return t(lang, "thinking")
    # A long answer shows its newest part while it grows; the final one is sent whole.
    if utf16_len(partial) > LIMIT - 10:
        partial = "…" + _tail(partial, LIMIT - 2000)
    return partial + " ▌"


def sources_line(lang: str, sources: list[Source]) -> str:
    """Where the answer's passages came from: each document, with its pages."""
    places = [
        t(lang, "source_page", name=source.name, page=source.page)
        if source.page is not None
        else f"«{source.name}»" + (f" ({source.section})" if source.section else "")
        for source in sources
    ]
    return t(lang, "sources", places="; ".join(places))


def with_sources(
    parts: list[tuple[str, list[MessageEntity]]], line: str
) -> list[tuple[str, list[MessageEntity]]]:
    """The answer's messages with the sources under the last one (or in one more, if it is full)."""
    text, entities = parts[-1]
    if utf16_len(text) + utf16_len(line) + 2 <= LIMIT:
        return [*parts[:-1], (f"{text}\n\n{line}", entities)]
    return [*parts, (line, [])]


def _tail(text: str, units: int) -> str:
    """The longest end of `text` within `units` UTF-16 units (an emoji takes two)."""
    start, used = len(text), 0
    while start > 0 and used + (cost := 2 if ord(text[start - 1]) > 0xFFFF else 1) <= units:
        used += cost
        start -= 1
    return text[start:]


def _not_modified(exc: TelegramBadRequest) -> bool:
    return "message is not modified" in exc.message


class Deliverer:
    """Follows tasks in the background; one follower per task, whatever asks for it."""

    def __init__(self, bot: Bot, gateway: GatewayClient, settings: BotSettings) -> None:
        self.bot = bot
        self.gateway = gateway
        self.settings = settings
        self._followers: dict[str, asyncio.Task[None]] = {}
        self._drafts: dict[tuple[int, int], str] = {}
        # Messages showing a voice note's words -> the task answering it: a reply corrects them.
        self._transcripts: OrderedDict[tuple[int, int], str] = OrderedDict()

    def follow(self, task_id: str, target: Target) -> None:
        if task_id in self._followers:
            return
        runner = asyncio.create_task(self._run(task_id, target), name=f"follow-{task_id}")
        self._followers[task_id] = runner
        runner.add_done_callback(lambda _: self._followers.pop(task_id, None))

    def transcript_shown(self, chat: int, message_id: int, task_id: str) -> None:
        self._transcripts[(chat, message_id)] = task_id
        while len(self._transcripts) > _TRANSCRIPTS_KEPT:
            self._transcripts.popitem(last=False)

    def task_for_transcript(self, chat: int, message_id: int) -> str | None:
        """The task answering the voice note whose words message `message_id` shows, if known."""
        return self._transcripts.get((chat, message_id))

    def task_for_draft(self, chat: int, draft_id: int) -> str | None:
        return self._drafts.get((chat, draft_id))

    def draft_started(self, chat: int, draft_id: int, task_id: str) -> None:
        """A draft streams `task_id`: its stop button cancels that task."""
        self._drafts[(chat, draft_id)] = task_id

    def draft_ended(self, chat: int, draft_id: int) -> None:
        self._drafts.pop((chat, draft_id), None)

    async def resume(self) -> int:
        """Deliver what finished (or is still running) while this bot was away."""
        owed = await self.gateway.undelivered(Face.TELEGRAM.prefix)
        for status in owed:
            target = Target.from_meta(status.client_meta or {})
            if target is not None:
                if target.transcript is not None:
                    self.transcript_shown(target.chat, target.transcript, status.task_id)
                self.follow(status.task_id, target)
        return len(owed)

    async def shutdown(self) -> None:
        for runner in list(self._followers.values()):
            runner.cancel()
        await asyncio.gather(*list(self._followers.values()), return_exceptions=True)

    async def _run(self, task_id: str, target: Target) -> None:
        try:
            await _Follower(self, task_id, target).run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("task=%s chat=%s delivery failed", task_id, target.chat)

    async def with_flood_control(self, call: Callable[[], Awaitable[T]], attempts: int = 6) -> T:
        """Run a Telegram call that must happen, waiting out 429s (never fatal)."""
        for attempt in range(attempts):
            try:
                return await call()
            except TelegramRetryAfter as exc:
                wait = min(float(exc.retry_after), _MAX_FLOOD_WAIT)
                log.warning("flood control: waiting %.0fs (attempt %d)", wait, attempt + 1)
                await asyncio.sleep(wait)
        return await call()


class _Follower:
    """The life of one answer in one chat."""

    def __init__(self, deliverer: Deliverer, task_id: str, target: Target) -> None:
        self.d = deliverer
        self.bot = deliverer.bot
        self.task_id = task_id
        self.target = target
        self.settings = deliverer.settings
        # Drafts only in private chats, and only for a task that has no placeholder message yet.
        self.draft_id = target.reply_to if target.private and target.placeholder is None else None
        self.shown: str | None = None
        self.shown_at = 0.0
        self.next_update = 0.0
        self.next_typing = 0.0

    async def run(self) -> None:
        lang = self.target.lang
        unreachable_since: float | None = None
        if self.draft_id:
            self.d.draft_started(self.target.chat, self.draft_id, self.task_id)
        status: TaskOut | None = None
        tag: str | None = None
        try:
            while True:
                try:
                    fresh, tag = await self.d.gateway.watch(self.task_id, tag, self._patience(status))
                    unreachable_since = None
                except GatewayUnavailable as exc:
                    unreachable_since = unreachable_since or time.monotonic()
                    if time.monotonic() - unreachable_since > _GATEWAY_PATIENCE:
                        log.error("task=%s gateway unreachable for too long: %s", self.task_id, exc)
                        await self._send_final([(t(lang, "gateway_down"), [])], None)
                        return
                    await asyncio.sleep(2)
                    continue
                except GatewayRejected as exc:
                    log.warning("task=%s is gone from the gateway: %s", self.task_id, exc.detail)
                    return
                status = fresh or status
                assert status is not None  # the first answer always has the status (no tag yet)
                if status.status in FINAL_STATUSES:
                    await self._finish(status)
                    return
                await self._progress(status)
        finally:
            if self.draft_id:
                self.d.draft_ended(self.target.chat, self.draft_id)

    def _patience(self, status: TaskOut | None) -> float:
        """How long to wait for news before acting anyway: a typing notice, a held-back update."""
        if status is None:
            return 0.0
        due = self.next_typing
        if progress_text(status, self.target.lang) != self.shown:
            due = min(due, self.next_update)
        if self.draft_id is not None:
            due = min(due, self.shown_at + _DRAFT_REFRESH)
        shortest = self.settings.bot_poll_interval_seconds
        return min(max(due - time.monotonic(), shortest), _LONGEST_WAIT)

    async def _show_transcript(self, status: TaskOut) -> None:
        """Once a voice note's words are known, show them (a reply to this message corrects them)."""
        voice = status.voice
        if voice is None or voice.transcript is None or self.target.transcript is not None:
            return
        text = t(self.target.lang, "transcript", text=voice.transcript)
        sent = await self.d.with_flood_control(
            partial(
                self.bot.send_message,
                self.target.chat,
                text[:LIMIT],
                reply_parameters=self.target.reply(),
                message_thread_id=self.target.thread,
            )
        )
        self.target.transcript = sent.message_id
        self.d.transcript_shown(self.target.chat, sent.message_id, self.task_id)
        with contextlib.suppress(GatewayUnavailable, GatewayRejected):
            await self.d.gateway.note(self.task_id, client_meta=self.target.meta())

    async def _progress(self, status: TaskOut) -> None:
        await self._show_transcript(status)
        now = time.monotonic()
        if now >= self.next_typing:
            self.next_typing = now + _TYPING_EVERY
            with contextlib.suppress(TelegramAPIError):
                await self.bot.send_chat_action(
                    self.target.chat, ChatAction.TYPING, message_thread_id=self.target.thread
                )
        text = progress_text(status, self.target.lang)
        stale_draft = self.draft_id is not None and now - self.shown_at > _DRAFT_REFRESH
        if now < self.next_update or (text == self.shown and not stale_draft):
            return
        try:
            await self._show(text)
            self.shown, self.shown_at = text, now
            self.next_update = now + self.settings.bot_edit_interval_seconds
        except TelegramRetryAfter as exc:
            # Flood control: skip updates until Telegram allows them again; the final answer waits too.
            log.warning("task=%s flood control during streaming: %ss", self.task_id, exc.retry_after)
            self.next_update = now + float(exc.retry_after)

    async def _show(self, text: str) -> None:
        if self.draft_id is not None:
            try:
                await self.bot.send_message_draft(
                    chat_id=self.target.chat, draft_id=self.draft_id, text=text, can_stop=True
                )
                return
            except TelegramRetryAfter:
                raise
            except TelegramAPIError as exc:
                log.info("task=%s drafts unavailable (%s); editing a message instead", self.task_id, exc)
                self.d.draft_ended(self.target.chat, self.draft_id)
                self.draft_id = None
        if self.target.placeholder is None:
            message = await self.bot.send_message(
                self.target.chat,
                text,
                reply_parameters=self.target.reply(),
                message_thread_id=self.target.thread,
            )
            self.target.placeholder = message.message_id
            with contextlib.suppress(GatewayUnavailable, GatewayRejected):
                await self.d.gateway.note(self.task_id, client_meta=self.target.meta())
            return
        try:
            await self.bot.edit_message_text(
                text=text, chat_id=self.target.chat, message_id=self.target.placeholder
            )
        except TelegramBadRequest as exc:
            if not _not_modified(exc):
                raise

    async def _finish(self, status: TaskOut) -> None:
        await self._show_transcript(status)
        lang = self.target.lang
        state = status.status
        answer = status.answer or ""
        parts: list[tuple[str, list[MessageEntity]]]
        if state == TaskStatus.FAILED:
            parts = [(failure(lang, status.finish_reason), [])]
            keyboard = retry_keyboard(lang, f"regen:{self.task_id}")
        else:
            if state == TaskStatus.CANCELED:
                answer = f"{answer}\n\n{t(lang, 'stopped')}" if answer.strip() else t(lang, "stopped")
            parts = await format_guarded(answer) if answer.strip() else []
            parts = parts or [(t(lang, "empty_answer"), [])]
            if status.sources:
                parts = with_sources(parts, sources_line(lang, status.sources))
            keyboard = answer_keyboard(lang, self.task_id)
        await self._send_final(parts, keyboard)
        with contextlib.suppress(GatewayUnavailable, GatewayRejected):
            await self.d.gateway.note(self.task_id, delivered=True)
        log.info(
            "task=%s chat=%s delivered (%s, %d message(s))", self.task_id, self.target.chat, state, len(parts)
        )

    async def _send_final(
        self, parts: list[tuple[str, list[MessageEntity]]], keyboard: InlineKeyboardMarkup | None
    ) -> None:
        for n, (text, entities) in enumerate(parts):
            markup = keyboard if n == len(parts) - 1 else None
            edit = n == 0 and self.target.placeholder is not None and self.draft_id is None
            await self.d.with_flood_control(partial(self._send_one, text, entities, markup, edit))

    async def _send_one(
        self, text: str, entities: list[MessageEntity], markup: InlineKeyboardMarkup | None, edit: bool
    ) -> Message | bool:
        chat = self.target.chat
        try:
            if edit:
                assert self.target.placeholder is not None
                return await self.bot.edit_message_text(
                    text=text,
                    chat_id=chat,
                    message_id=self.target.placeholder,
                    entities=entities,
                    reply_markup=markup,
                )
            return await self.bot.send_message(
                chat,
                text,
                entities=entities,
                reply_markup=markup,
                reply_parameters=self.target.reply(),
                message_thread_id=self.target.thread,
            )
        except TelegramBadRequest as exc:
            if edit and _not_modified(exc):
                return True
            if edit and "message to edit not found" in exc.message:
                # The placeholder was deleted: send the answer as a new message.
                self.target.placeholder = None
                return await self._send_one(text, entities, markup, edit=False)
            if entities:
                # Never fail on formatting: the same text without entities.
                log.warning("task=%s entities refused (%s); sending plain text", self.task_id, exc.message)
                return await self._send_one(text, [], markup, edit)
            raise
