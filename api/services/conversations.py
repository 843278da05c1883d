"""A person's conversations: the list, the current one of each chat, titles, deletion and export.

The current conversation of a chat is the one most recently started, written in or switched to
(`active_at`), so switching back to an old one is one write and the order of the list is the
order people expect: what they used last comes first.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.orm import Session

from api.services import Conflict, NotFound
from shared.account_schemas import (
    MAX_TITLE_CHARS,
    ConversationExport,
    ConversationSummary,
    TranscriptionExport,
    UserExport,
)
from shared.db import Database
from shared.models import Conversation, Message, Task, TaskStatus, User, VoiceNote, utcnow
from shared.schemas import Exchange

log = logging.getLogger(__name__)

_OWNER = (
    select(User.external_id)
    .join(Conversation, Conversation.user_id == User.id)
    .where(Conversation.id == bindparam("conversation_id"))
)
_IN_FLIGHT = select(func.count()).where(
    Task.conversation_id == bindparam("conversation_id"),
    Task.status.in_([TaskStatus.QUEUED, TaskStatus.STARTED]),
)


def owner_of(db: Database, conversation_id: int) -> str | None:
    with db.reading() as session:
        return session.scalar(_OWNER, {"conversation_id": conversation_id})


def listing(db: Database, user_id: str, chat_id: str | None, limit: int) -> list[ConversationSummary]:
    """The person's conversations in one chat, the current one first, then by last use."""
    with db.reading() as session:
        user = session.scalar(select(User.id).where(User.external_id == user_id))
        if user is None:
            return []
        sent = (
            select(func.count())
            .where(Task.conversation_id == Conversation.id, Task.superseded.is_(False))
            .scalar_subquery()
        )
        rows = session.execute(
            select(Conversation, sent)
            .where(Conversation.user_id == user, Conversation.chat_id == (chat_id or ""))
            .order_by(Conversation.active_at.desc(), Conversation.id.desc())
            .limit(limit)
        ).all()
    return [_summary(conversation, count, n == 0) for n, (conversation, count) in enumerate(rows)]


def _summary(conversation: Conversation, messages: int, current: bool) -> ConversationSummary:
    return ConversationSummary(
        conversation_id=conversation.id,
        title=conversation.title,
        chat_id=conversation.chat_id,
        created_at=conversation.created_at,
        active_at=conversation.active_at,
        messages=messages,
        current=current,
    )


def rename(db: Database, conversation_id: int, title: str) -> None:
    with db.writing() as session:
        _get(session, conversation_id).title = title[:MAX_TITLE_CHARS]


def activate(db: Database, conversation_id: int) -> None:
    """Make the conversation its chat's current one: the next message continues it."""
    with db.writing() as session:
        _get(session, conversation_id).active_at = utcnow()


def remove(db: Database, conversation_id: int) -> None:
    """Delete a conversation and everything in it; refused while one of its answers is being written."""
    with db.writing() as session:
        _get(session, conversation_id)
        if session.scalar(_IN_FLIGHT, {"conversation_id": conversation_id}):
            raise Conflict("An answer in this conversation is still being written; stop it or wait first.")
        session.execute(delete(Task).where(Task.conversation_id == conversation_id))
        session.execute(delete(Message).where(Message.conversation_id == conversation_id))
        session.execute(delete(Conversation).where(Conversation.id == conversation_id))
    log.info("conversation=%s deleted", conversation_id)


def _get(session: Session, conversation_id: int) -> Conversation:
    conversation = session.get(Conversation, conversation_id)
    if conversation is None:
        raise NotFound("No conversation with this id.")
    return conversation


def export(db: Database, conversation_id: int) -> ConversationExport:
    with db.reading() as session:
        return _export(session, _get(session, conversation_id))


def _export(session: Session, conversation: Conversation, superseded: bool = False) -> ConversationExport:
    """The conversation as it reads now; with `superseded`, answers replaced by regenerating too."""
    chosen = select(Task).where(Task.conversation_id == conversation.id)
    if not superseded:
        chosen = chosen.where(Task.superseded.is_(False))
    tasks = session.scalars(chosen.order_by(Task.request_message_id)).all()
    texts = dict(
        session.execute(
            select(Message.id, Message.content).where(Message.conversation_id == conversation.id)
        ).all()
    )
    return ConversationExport(
        conversation_id=conversation.id,
        title=conversation.title,
        chat_id=conversation.chat_id,
        created_at=conversation.created_at,
        exchanges=[exchange(task, texts) for task in tasks],
    )


def exchange(task: Task, texts: Mapping[int, str]) -> Exchange:
    """One message and what became of it, with `texts` holding its messages' contents by id."""
    return Exchange(
        task_id=task.id,
        status=TaskStatus(task.status),
        question=texts[task.request_message_id],
        answer=texts.get(task.reply_message_id) if task.reply_message_id else None,
        error=task.error,
        created_at=task.created_at,
        superseded=task.superseded,
        voice=task.voice,
    )


# A person's transcriptions on their own, without reading the audio still kept for some.
_TRANSCRIPTIONS = (
    select(
        VoiceNote.id,
        VoiceNote.status,
        VoiceNote.language,
        VoiceNote.detected_language,
        VoiceNote.duration_seconds,
        VoiceNote.text,
        VoiceNote.created_at,
        VoiceNote.audio.is_not(None).label("audio_kept"),
    )
    .where(VoiceNote.user_id == bindparam("user_id"), VoiceNote.task_id.is_(None))
    .order_by(VoiceNote.created_at, VoiceNote.id)
)


def export_user(db: Database, user_id: str) -> UserExport:
    """Everything kept about a person: their settings and every conversation, oldest first."""
    with db.reading() as session:
        user = session.scalar(select(User).where(User.external_id == user_id))
        if user is None:
            raise NotFound("Nothing is kept about this user.")
        conversations = session.scalars(
            select(Conversation).where(Conversation.user_id == user.id).order_by(Conversation.id)
        ).all()
        return UserExport(
            user_id=user.external_id,
            display_name=user.display_name,
            persona=user.persona,
            instructions=user.instructions,
            created_at=user.created_at,
            exported_at=datetime.now(UTC),
            conversations=[_export(session, c, superseded=True) for c in conversations],
            transcriptions=[
                TranscriptionExport(
                    transcription_id=row.id,
                    status=TaskStatus(row.status),
                    language=row.language,
                    detected_language=row.detected_language,
                    duration_seconds=row.duration_seconds,
                    text=row.text,
                    created_at=row.created_at,
                    audio_kept=row.audio_kept,
                )
                for row in session.execute(_TRANSCRIPTIONS, {"user_id": user.id})
            ],
        )


@dataclass(frozen=True)
class Labels:
    """The words of a Markdown export, in the reader's language."""

    untitled: str
    exported: str
    you: str
    assistant: str
    no_answer: str


LABELS = {
    "en": Labels("Conversation", "Exported", "You", "Assistant", "(no answer)"),
    "ru": Labels("Разговор", "Выгружено", "Вы", "Ассистент", "(нет ответа)"),
}


def markdown(conversation: ConversationExport, lang: str = "en") -> str:
    """The conversation as a Markdown file a person can keep or print."""
    words = LABELS.get(lang, LABELS["en"])
    lines = [
        f"# {conversation.title or words.untitled}",
        "",
        f"_{words.exported} {datetime.now(UTC):%Y-%m-%d %H:%M} UTC_",
    ]
    for exchange in conversation.exchanges:
        when = f"{exchange.created_at:%Y-%m-%d %H:%M}"
        answer = exchange.answer if exchange.answer is not None else (exchange.error or words.no_answer)
        lines += [
            "",
            f"**{words.you}** · {when}",
            "",
            exchange.question,
            "",
            f"**{words.assistant}**",
            "",
            answer,
        ]
    return "\n".join(lines) + "\n"
