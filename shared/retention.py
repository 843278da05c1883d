"""Deleting what users and operators no longer want kept: old conversations, or a whole user."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, func, select, update

from shared.db import Database
from shared.models import (
    FINAL_STATUSES,
    AccessStatus,
    Conversation,
    Credential,
    Document,
    EmbeddingRequest,
    Message,
    Task,
    TaskStatus,
    User,
    VoiceNote,
    utcnow,
)

log = logging.getLogger(__name__)
_ACTIVE = (TaskStatus.QUEUED, TaskStatus.STARTED)


def purge_conversations(db: Database, older_than_days: int, now: datetime | None = None) -> int:
    """Delete conversations whose newest message is older than the limit (none with work in progress)."""
    cutoff = (now or utcnow()) - timedelta(days=older_than_days)
    newest = (
        select(Message.conversation_id, func.max(Message.created_at).label("last"))
        .group_by(Message.conversation_id)
        .subquery()
    )
    busy = exists().where(Task.conversation_id == Conversation.id, Task.status.in_(_ACTIVE))
    with db.writing() as session:
        ids = list(
            session.scalars(
                select(Conversation.id)
                .join(newest, newest.c.conversation_id == Conversation.id, isouter=True)
                .where(func.coalesce(newest.c.last, Conversation.created_at) < cutoff, ~busy)
            )
        )
        if ids:
            # Tasks first: they point at messages, which go with their conversation.
            tasks = select(Task.id).where(Task.conversation_id.in_(ids))
            session.execute(delete(VoiceNote).where(VoiceNote.task_id.in_(tasks)))
            session.execute(delete(Task).where(Task.conversation_id.in_(ids)))
            # Documents' passages (and their index entries) go with them.
            session.execute(delete(Document).where(Document.conversation_id.in_(ids)))
            session.execute(delete(Message).where(Message.conversation_id.in_(ids)))
            session.execute(delete(Conversation).where(Conversation.id.in_(ids)))
    if ids:
        log.info("retention: deleted %d conversation(s) older than %d days", len(ids), older_than_days)
    return len(ids)


def forget_user(db: Database, external_id: str) -> bool:
    """Delete everything kept about a user, answers in progress included."""
    with db.writing() as session:
        user = session.scalar(select(User).where(User.external_id == external_id))
        if user is None:
            return False
        # A worker answering one of these tasks notices it is gone at its next write, and stops.
        conversations = select(Conversation.id).where(Conversation.user_id == user.id)
        session.execute(delete(VoiceNote).where(VoiceNote.user_id == user.id))
        session.execute(delete(EmbeddingRequest).where(EmbeddingRequest.user_id == user.id))
        session.execute(delete(Task).where(Task.user_id == user.id))
        session.execute(delete(Document).where(Document.user_id == user.id))
        session.execute(delete(Message).where(Message.conversation_id.in_(conversations)))
        session.execute(delete(Conversation).where(Conversation.user_id == user.id))
        if user.access == AccessStatus.BLOCKED:
            # The block is the admins' decision, not the person's data: it outlives the deletion
            # (else a blocked person could lift it by deleting themselves), and nothing else does.
            session.execute(delete(Credential).where(Credential.user_id == user.id))
            user.persona = user.display_name = user.instructions = user.speech_language = None
            log.info("user=%s forgotten: all their data deleted, their block kept", external_id)
            return True
        session.execute(delete(User).where(User.id == user.id))
    log.info("user=%s forgotten: all their data deleted", external_id)
    return True


# A transcription asked for on its own (/v1) is answered at once; its row is kept only this long.
_STANDALONE_KEPT = timedelta(hours=1)


def purge_voice(db: Database, keep_seconds: int, now: datetime | None = None) -> int:
    """Drop the audio of notes heard (or failed, or canceled) over `keep_seconds` ago, and delete
    transcriptions asked for on their own once they are old.

    The worker drops the audio itself when VOICE_KEEP_SECONDS is 0; this catches the rest: a kept
    note's time is up, a note whose message was canceled before it was heard, a worker that died."""
    now = now or utcnow()
    cutoff = now - timedelta(seconds=keep_seconds)
    ended_task = select(Task.id).where(Task.status.in_(FINAL_STATUSES), Task.finished_at < cutoff)
    with db.writing() as session:
        heard = session.execute(
            update(VoiceNote)
            .where(VoiceNote.audio.is_not(None), VoiceNote.finished_at < cutoff)
            .values(audio=None)
        )
        answered = session.execute(
            update(VoiceNote)
            .where(VoiceNote.audio.is_not(None), VoiceNote.task_id.in_(ended_task))
            .values(audio=None, finished_at=func.coalesce(VoiceNote.finished_at, now))
        )
        gone = session.execute(
            delete(VoiceNote).where(
                VoiceNote.task_id.is_(None), VoiceNote.created_at < now - _STANDALONE_KEPT
            )
        )
    count = sum(int(getattr(result, "rowcount", 0) or 0) for result in (heard, answered, gone))
    if count:
        log.info("voice: %d note(s) past their keeping time cleared", count)
    return count


# An embedding request's row outlives its texts and vectors only as its tokens, for the quota of
# the month it was made in; texts no worker took are dropped with it or after this long.
_EMBEDDING_TOKENS_KEPT = timedelta(days=32)
_EMBEDDING_TEXTS_KEPT = timedelta(hours=1)


def purge_embeddings(db: Database, now: datetime | None = None) -> int:
    """Drop the texts and vectors of embedding requests nobody waits for any more (their gateway
    stopped), and delete requests older than the longest quota period."""
    now = now or utcnow()
    with db.writing() as session:
        stale = session.execute(
            update(EmbeddingRequest)
            .where(
                EmbeddingRequest.created_at < now - _EMBEDDING_TEXTS_KEPT,
                (EmbeddingRequest.texts.is_not(None)) | (EmbeddingRequest.vectors.is_not(None)),
            )
            .values(texts=None, vectors=None)
        )
        old = session.execute(
            delete(EmbeddingRequest).where(EmbeddingRequest.created_at < now - _EMBEDDING_TOKENS_KEPT)
        )
    count = sum(int(getattr(result, "rowcount", 0) or 0) for result in (stale, old))
    if count:
        log.info("embeddings: %d request(s) past their keeping time cleared", count)
    return count
