"""Users: their conversations, persona, latest task and statistics."""

from __future__ import annotations

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from api.services import NotFound
from api.services.conversations import exchange
from api.services.status import describe
from shared.db import Database
from shared.models import Conversation, Message, Task, TaskStatus, User, utcnow
from shared.personas import DEFAULT, PERSONAS
from shared.schemas import Exchange, TaskOut, UserSettingsOut, UserStats
from shared.titles import title_from

# The "chat" of conversations that came through /v1 (one per request: the client sends the history).
OPENAI_CHAT = "openai"
_USER = select(User).where(User.external_id == bindparam("external_id"))
_LATEST_CONVERSATION = (
    select(Conversation)
    .where(Conversation.user_id == bindparam("user_id"), Conversation.chat_id == bindparam("chat_id"))
    .order_by(Conversation.active_at.desc(), Conversation.id.desc())
    .limit(1)
)


def get_or_create_user(session: Session, external_id: str) -> User:
    user = session.scalar(_USER, {"external_id": external_id})
    if user is None:
        user = User(external_id=external_id)
        session.add(user)
        session.flush()
    return user


def _latest_conversation(session: Session, user_id: int, chat_id: str) -> Conversation | None:
    return session.scalar(_LATEST_CONVERSATION, {"user_id": user_id, "chat_id": chat_id})


def current_conversation(session: Session, user: User, chat_id: str, text: str) -> Conversation:
    """The conversation a new message `text` goes to (made if there is none); it stays the current one."""
    conversation = _latest_conversation(session, user.id, chat_id)
    if conversation is None:
        conversation = Conversation(user_id=user.id, chat_id=chat_id)
        session.add(conversation)
    conversation.active_at = utcnow()
    if conversation.title is None:
        conversation.title = title_from(text)
    session.flush()
    return conversation


def new_conversation(db: Database, user_id: str, chat_id: str | None) -> int:
    """Start a fresh conversation: the next messages of this user (in this chat) see no history."""
    with db.writing() as session:
        user = get_or_create_user(session, user_id)
        conversation = Conversation(user_id=user.id, chat_id=chat_id or "")
        session.add(conversation)
        session.flush()
        return conversation.id


def set_persona(db: Database, user_id: str, persona: str) -> None:
    if persona not in PERSONAS:
        raise NotFound(f"No persona {persona!r}; choose one of: {', '.join(PERSONAS)}.")
    with db.writing() as session:
        get_or_create_user(session, user_id).persona = persona


def settings(db: Database, user_id: str) -> UserSettingsOut:
    with db.reading() as session:
        row = session.execute(
            select(User.persona, User.instructions, User.speech_language).where(User.external_id == user_id)
        ).one_or_none()
    persona, instructions, speech = row if row else (None, None, None)
    return UserSettingsOut(persona=persona or DEFAULT, instructions=instructions, speech_language=speech)


def set_speech_language(db: Database, user_id: str, language: str | None) -> None:
    """The language of the person's voice notes from now on (None: detected in each note)."""
    with db.writing() as session:
        get_or_create_user(session, user_id).speech_language = language


def set_instructions(db: Database, user_id: str, instructions: str | None) -> None:
    """The person's standing instructions for their next answers (None or empty: none)."""
    with db.writing() as session:
        get_or_create_user(session, user_id).instructions = instructions or None


def latest_task(db: Database, user_id: str, chat_id: str | None) -> TaskOut:
    """The newest task of the user's current conversation in that chat."""
    with db.reading() as session:
        user = session.scalar(select(User).where(User.external_id == user_id))
        conversation = _latest_conversation(session, user.id, chat_id or "") if user else None
        task = None
        if conversation is not None:
            task = session.scalar(
                select(Task)
                .where(Task.conversation_id == conversation.id, Task.superseded.is_(False))
                .order_by(Task.request_message_id.desc())
                .limit(1)
            )
        if task is None:
            raise NotFound("This conversation has no messages yet.")
        return describe(session, task)


def stats(db: Database, user_id: str) -> UserStats:
    with db.reading() as session:
        user = session.scalar(select(User).where(User.external_id == user_id))
        if user is None:
            return UserStats(messages=0, answers=0, prompt_tokens=0, completion_tokens=0, conversations=0)
        row = session.execute(
            select(
                func.count(),
                func.count().filter(Task.status == TaskStatus.FINISHED),
                func.coalesce(func.sum(Task.prompt_tokens), 0),
                func.coalesce(func.sum(Task.completion_tokens), 0),
                func.sum(Task.generation_seconds).filter(Task.completion_tokens > 0),
                func.sum(Task.completion_tokens).filter(Task.completion_tokens > 0),
            ).where(Task.user_id == user.id)
        ).one()
        conversations = session.scalar(select(func.count()).where(Conversation.user_id == user.id)) or 0
    seconds, tokens = row[4], row[5]
    return UserStats(
        messages=row[0],
        answers=row[1],
        prompt_tokens=row[2],
        completion_tokens=row[3],
        conversations=conversations,
        tokens_per_second=round(tokens / seconds, 2) if seconds and tokens else None,
    )


def history(db: Database, user_id: str, chat_id: str | None, limit: int) -> list[Exchange]:
    """The newest exchanges of the user's current conversation, oldest first (replaced ones left out)."""
    with db.reading() as session:
        user = session.scalar(select(User).where(User.external_id == user_id))
        conversation = _latest_conversation(session, user.id, chat_id or "") if user else None
        if conversation is None:
            return []
        tasks = session.scalars(
            select(Task)
            .where(Task.conversation_id == conversation.id, Task.superseded.is_(False))
            .order_by(Task.request_message_id.desc())
            .limit(limit)
        ).all()
        ids = [i for t in tasks for i in (t.request_message_id, t.reply_message_id) if i is not None]
        texts = dict(session.execute(select(Message.id, Message.content).where(Message.id.in_(ids))).all())
        return [exchange(t, texts) for t in reversed(tasks)]
