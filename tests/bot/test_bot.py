"""The Telegram bot, end to end: fake Telegram ⇄ bot ⇄ gateway ⇄ Redis ⇄ worker (scripted model)."""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from typing import Any

import httpx
import pytest

from fakes.telegram import BOT_USER, ChatMessage, FakeTelegram
from shared.config import DatabaseSettings, GatewaySettings, QueueSettings
from stack.redis_server import free_port
from tests.bot.conftest import BotRunner
from tests.conftest import API_KEY, ServedGateway, wait_for

USER = 1001


def _buttons(message: ChatMessage) -> list[str]:
    markup = message.reply_markup or {}
    return [b["callback_data"] for row in markup.get("inline_keyboard", []) for b in row]


def test_start_and_help_in_english_and_russian(
    telegram: FakeTelegram, start_bot: Callable[..., BotRunner]
) -> None:
    start_bot()
    telegram.send_text("/start", user_id=USER)
    telegram.send_text("/start", user_id=2002, language="ru")
    telegram.send_text("/help", user_id=USER)
    telegram.send_text("/help", user_id=7)

    assert telegram.last_with(USER, "Hi, Ann!")
    assert telegram.last_with(2002, "Привет, Ann!")
    help_text = telegram.last_with(USER, "Commands:").text
    for command in ("/new", "/retry", "/cancel", "/mode", "/stats", "/help"):
        assert command in help_text
    assert "/status" not in help_text
    assert "/status" in telegram.last_with(7, "Commands:").text


def test_a_private_message_streams_as_a_draft_then_arrives_whole(
    telegram: FakeTelegram, start_bot: Callable[..., BotRunner], worker: Any, served_gateway: ServedGateway
) -> None:
    start_bot()
    asked = telegram.send_text("hello there", user_id=USER)

    answer = telegram.last_with(USER, "Answer 1 to 'hello there'")

    assert answer.text == "Answer 1 to 'hello there' (saw 0 answers)"
    assert answer.reply_to == asked
    assert _buttons(answer)[0].startswith("regen:") and _buttons(answer)[1] == "new"
    drafts = telegram.drafts[(USER, asked)]
    assert drafts and any(d.startswith("Answer") or "queue" in d or "Thinking" in d for d in drafts)
    assert telegram.called("sendChatAction")

    # The gateway learns that the answer reached the user (the bot says so right after sending it).
    def owed() -> list[object]:
        listed: list[object] = httpx.get(
            f"{served_gateway.url}/api/tasks/undelivered",
            params={"user_prefix": "tg:"},
            headers={"X-API-Key": API_KEY},
        ).json()
        return listed

    wait_for(lambda: owed() == [], timeout=30)


GROUP = -100500


def test_in_groups_only_mentions_and_replies_are_answered(
    telegram: FakeTelegram, start_bot: Callable[..., BotRunner], worker: Any
) -> None:
    start_bot()
    telegram.send_text("just chatting", user_id=USER, chat_id=GROUP, chat_type="supergroup")
    mention = "@test_assistant_bot what is up"
    telegram.send_text(
        mention,
        user_id=USER,
        chat_id=GROUP,
        chat_type="supergroup",
        entities=[{"type": "mention", "offset": 0, "length": 19}],
    )
    first = telegram.last_with(GROUP, "Answer 1 to 'what is up'")
    # A reply to the bot counts as addressing it; each member has a history of their own.
    telegram.send_text(
        "and then?",
        user_id=USER,
        chat_id=GROUP,
        chat_type="supergroup",
        reply_to_message={
            "message_id": first.message_id,
            "date": 0,
            "chat": {"id": GROUP, "type": "supergroup"},
            "from": BOT_USER,
            "text": first.text,
        },
    )
    telegram.last_with(GROUP, "Answer 2 to 'and then?' (saw 1 answers)")
    telegram.send_text(
        "@test_assistant_bot hi",
        user_id=3003,
        chat_id=GROUP,
        chat_type="supergroup",
        entities=[{"type": "mention", "offset": 0, "length": 19}],
    )
    telegram.last_with(GROUP, "Answer 1 to 'hi' (saw 0 answers)")

    texts = [m.text for m in telegram.chat(GROUP)]
    assert not any("just chatting" in text for text in texts)
    # Groups get no drafts: a placeholder message was edited into the answer.
    assert telegram.drafts == {}
    assert first.edits >= 1


def test_edits_respect_the_interval_and_survive_flood_control(
    telegram: FakeTelegram, start_bot: Callable[..., BotRunner], worker_thread: Callable[..., Any]
) -> None:
    worker_thread(
        FAKE_TOKEN_DELAY="0.02", FAKE_ENDLESS="1", MAX_TOKENS="150", PARTIAL_INTERVAL_SECONDS="0.05"
    )
    telegram.drafts_supported = False  # as in a chat where drafts fail: fall back to edits
    start_bot()
    telegram.fail_next("editMessageText", code=429, retry_after=1)
    telegram.send_text("tell me a long story", user_id=USER)

    final = telegram.wait_for(lambda: [m for m in telegram.chat(USER) if m.reply_markup], timeout=30)[0]

    assert final.text.startswith("Answer 1 to 'tell me a long story'")
    assert final.text.endswith("more")
    edits = [
        t for t, (name, _) in zip(telegram.times, telegram.calls, strict=True) if name == "editMessageText"
    ]
    gaps = [b - a for a, b in pairwise(edits)]
    assert len(edits) >= 3
    # Progress edits keep the interval (0.3 s here); only the final answer may follow sooner.
    assert all(gap >= 0.25 for gap in gaps[:-1]), gaps
    # After the 429 the bot waited before editing again.
    assert max(gaps) >= 0.9


def test_a_10000_character_answer_is_split_whole(
    telegram: FakeTelegram, start_bot: Callable[..., BotRunner], worker_thread: Callable[..., Any]
) -> None:
    from tests.fakes import SCRIPTED

    # Some 1,600 words: streamed quickly, still in several partial texts.
    worker_thread(FAKE_TOKEN_DELAY="0.002", MAX_TOKENS="4000", PARTIAL_INTERVAL_SECONDS="0.05")
    start_bot()
    telegram.send_text("!long", user_id=USER)

    parts = telegram.wait_for(lambda: _answer_parts(telegram, USER), timeout=60)

    assert len(parts) >= 3
    assert all(len(m.text.encode("utf-16-le")) // 2 <= 4096 for m in parts)
    joined = "\n\n".join(m.text for m in parts)
    # Every word arrives: the rendered text loses only the Markdown markers.
    for n in range(1, 17):
        assert f"Part {n}" in joined
        assert f"print({n}, 19)" in joined or n % 4
    assert joined.count("Sentence") == SCRIPTED["!long"].count("Sentence")
    assert all(m.entities for m in parts)
    assert _buttons(parts[-1]) and not any(_buttons(m) for m in parts[:-1])


def _answer_parts(telegram: FakeTelegram, chat: int) -> list[ChatMessage] | None:
    messages = telegram.chat(chat)
    if not messages or not messages[-1].reply_markup:
        return None
    return [m for m in messages if m.reply_to is not None or m.reply_markup]


def test_broken_markdown_is_delivered_without_errors(
    telegram: FakeTelegram, start_bot: Callable[..., BotRunner], worker: Any
) -> None:
    start_bot()
    telegram.send_text("!broken", user_id=USER)
    answer = telegram.last_with(USER, "Broken")
    assert "bold and" in answer.text and "no end" in answer.text
    assert _buttons(answer)


def test_stickers_get_a_polite_text_voice_and_documents_only(
    telegram: FakeTelegram, start_bot: Callable[..., BotRunner]
) -> None:
    start_bot()
    sticker = {
        "file_id": "f",
        "file_unique_id": "u",
        "type": "regular",
        "width": 512,
        "height": 512,
        "is_animated": False,
        "is_video": False,
    }
    telegram.push(
        "message",
        {
            "message_id": 77,
            "date": 0,
            "chat": {"id": USER, "type": "private"},
            "from": {"id": USER, "is_bot": False, "first_name": "Ann", "language_code": "ru"},
            "sticker": sticker,
        },
    )
    assert telegram.last_with(USER, "только текст, голосовые и документы")


def test_unknown_people_ask_admins_who_let_them_in_or_keep_them_out(
    telegram: FakeTelegram, start_bot: Callable[..., BotRunner], worker: Any, served_gateway: ServedGateway
) -> None:
    start_bot(telegram_allow_everyone=False, telegram_allowed_users=[USER])
    for text in ("hello", "hello again", "/start"):
        telegram.send_text(text, user_id=9009)
    telegram.send_text("/start", user_id=USER)  # listed in TELEGRAM_ALLOWED_USERS: no questions
    telegram.last_with(USER, "Hi, Ann")

    # One polite note to the person (not one per message), one request to the admin (id 7).
    telegram.last_with(9009, "asked its admins to let you in")
    request = telegram.last_with(7, "asks for access")
    assert "9009" in request.text and _buttons(request) == ["access:allow:9009", "access:block:9009"]
    assert len(telegram.chat(9009)) == 1 and len(telegram.chat(7)) == 1
    operator = {"X-API-Key": API_KEY}
    stats = httpx.get(f"{served_gateway.url}/api/users/tg:9009/stats", headers=operator).json()
    assert stats["messages"] == 0
    # Only an admin's press counts.
    telegram.press("access:allow:9009", request, user_id=9009)
    assert telegram.wait_for(lambda: telegram.called("answerCallbackQuery"))
    access = httpx.get(f"{served_gateway.url}/api/users/tg:9009/access", headers=operator).json()
    assert access["access"] == "requested"

    telegram.press("access:allow:9009", request, user_id=7)
    telegram.last_with(9009, "You can talk to me now")
    telegram.last_with(7, "may talk to the assistant now")
    telegram.send_text("finally", user_id=9009)
    telegram.last_with(9009, "Answer 1 to 'finally'")

    # /users lists the decision; /block keeps them out from the next message on, with no restart.
    telegram.send_text("/users", user_id=7)
    assert "✅ Ann (id 9009)" in telegram.last_with(7, "People").text
    telegram.send_text("/block 9009", user_id=7)
    telegram.last_with(7, "is blocked")
    telegram.send_text("are you there?", user_id=9009)
    telegram.last_with(9009, "this assistant is private")
    assert not [m for m in telegram.chat(9009) if "are you there" in m.text]
    # The decisions are in the database, for the next bot process too.
    people = httpx.get(f"{served_gateway.url}/api/access", headers=operator).json()
    assert [(p["user_id"], p["access"]) for p in people] == [("tg:9009", "blocked")]


def test_web_gives_a_personal_link_to_the_same_conversation(
    telegram: FakeTelegram, start_bot: Callable[..., BotRunner], worker: Any, served_gateway: ServedGateway
) -> None:
    start_bot(public_url="https://chat.example.org")
    telegram.send_text("first question", user_id=USER)
    telegram.last_with(USER, "Answer 1 to 'first question'")
    telegram.send_text("/web", user_id=USER, chat_id=-100, chat_type="supergroup")
    telegram.last_with(-100, "private chat")  # a personal link is never posted in a group
    telegram.send_text("/web", user_id=USER)
    message = telegram.last_with(USER, "https://chat.example.org/#invite=")
    invite = message.text.split("#invite=", 1)[1].split()[0]

    with httpx.Client(base_url=served_gateway.url) as page:
        me = page.post("/api/session", json={"invite": invite}).json()
        assert me == {"role": "person", "user_id": f"tg:{USER}", "chat_id": str(USER)}
        history = page.get(f"/api/users/tg:{USER}/history", params={"chat_id": str(USER)}).json()
        assert [h["question"] for h in history] == ["first question"]
        # The session is this person's only.
        assert page.get("/api/users/tg:1/history").status_code == 403


def test_signout_ends_ones_own_web_sessions_and_an_admins_reaches_someone_elses(
    telegram: FakeTelegram, start_bot: Callable[..., BotRunner], served_gateway: ServedGateway
) -> None:
    start_bot(public_url="https://chat.example.org")

    def sign_in(page: httpx.Client) -> None:
        links = len([m for m in telegram.chat(USER) if "#invite=" in m.text])
        telegram.send_text("/web", user_id=USER)
        telegram.wait_for(lambda: len([m for m in telegram.chat(USER) if "#invite=" in m.text]) > links)
        invite = telegram.last_with(USER, "#invite=").text.split("#invite=", 1)[1].split()[0]
        assert page.post("/api/session", json={"invite": invite}).status_code == 200

    with httpx.Client(base_url=served_gateway.url) as page:
        sign_in(page)
        telegram.send_text("/signout", user_id=USER)
        assert "ended: 1" in telegram.last_with(USER, "Signed out everywhere").text
        assert page.get("/api/me").status_code == 401
    with httpx.Client(base_url=served_gateway.url) as page:
        sign_in(page)
        # Someone else's needs an admin (id 7): a person's "/signout <id>" is refused, and changes nothing.
        telegram.send_text(f"/signout {USER}", user_id=9009)
        telegram.last_with(9009, "for the assistant's admins")
        assert page.get("/api/me").status_code == 200
        telegram.send_text(f"/signout {USER}", user_id=7)
        assert f"of id {USER} ended: 1" in telegram.last_with(7, "Web sign-ins").text
        assert page.get("/api/me").status_code == 401


def test_a_flood_from_one_user_is_slowed_kindly(
    telegram: FakeTelegram, start_bot: Callable[..., BotRunner], worker: Any
) -> None:
    start_bot(bot_rate_limit_messages=2, bot_rate_limit_seconds=60)
    for n in range(4):
        telegram.send_text(f"message {n}", user_id=USER)
    telegram.last_with(USER, "Answer 2 to 'message 1'")
    warning = telegram.last_with(USER, "faster than I can answer")
    assert "wait" in warning.text
    assert not any("message 2" in m.text or "message 3" in m.text for m in telegram.chat(USER))
    # Others are not affected.
    telegram.send_text("me too", user_id=5005)
    telegram.last_with(5005, "Answer 1 to 'me too'")


def test_gateway_down_gives_a_short_message_and_retry_works_once_it_is_back(
    telegram: FakeTelegram,
    start_bot: Callable[..., BotRunner],
    worker: Any,
    gateway_settings: GatewaySettings,
    db_url: str,
    queue_settings: QueueSettings,
) -> None:
    port = free_port()
    start_bot(gateway_url=f"http://127.0.0.1:{port}")
    telegram.send_text("are you there?", user_id=USER, language="ru")
    down = telegram.last_with(USER, "недоступен")
    assert [b.split(":")[0] for b in _buttons(down)] == ["resend"]
    assert "Traceback" not in down.text

    gateway = ServedGateway(
        gateway_settings, DatabaseSettings(_env_file=None, database_url=db_url), queue_settings, port=port
    )
    gateway.start()
    try:
        # Someone else in the chat presses it first: it may not send the message as its writer.
        telegram.press(_buttons(down)[0], down, user_id=5005)
        refusal = telegram.wait_for(lambda: telegram.called("answerCallbackQuery"))[-1]
        assert refusal["text"] == "This button belongs to someone else's answer."
        telegram.press(_buttons(down)[0], down, user_id=USER, language="ru")
        telegram.last_with(USER, "Answer 1 to 'are you there?'")
        assert not any("are you there" in m.text for m in telegram.chat(5005))
    finally:
        gateway.stop()


def test_quick_messages_keep_their_order(
    telegram: FakeTelegram, start_bot: Callable[..., BotRunner], worker: Any
) -> None:
    start_bot()
    for n in range(4):
        telegram.send_text(f"quick {n}", user_id=USER)
    for n in range(4):
        telegram.last_with(USER, f"Answer {n + 1} to 'quick {n}' (saw {n} answers)")
    answers = [m.text for m in telegram.chat(USER) if m.text.startswith("Answer")]
    assert answers == [f"Answer {n + 1} to 'quick {n}' (saw {n} answers)" for n in range(4)]


@pytest.mark.slow
def test_the_real_model_answers_through_the_bot(
    telegram: FakeTelegram,
    start_bot: Callable[..., BotRunner],
    real_worker: Callable[..., Any],
) -> None:
    real_worker(N_CTX="2048")
    start_bot()
    telegram.send_text("Say hello in one short sentence.", user_id=USER)

    answer = telegram.wait_for(lambda: [m for m in telegram.chat(USER) if m.reply_markup], timeout=120)[0]

    assert answer.text.strip() and "⚠️" not in answer.text
    assert telegram.drafts  # it streamed before it arrived


def test_a_failed_answer_is_explained_in_the_users_language(
    telegram: FakeTelegram, start_bot: Callable[..., BotRunner], worker: Any
) -> None:
    start_bot()
    # 3,000 emoji fit the 4,000-character limit but not the (fake) model's window.
    telegram.send_text("😀" * 3000, user_id=USER, language="ru")
    failed = telegram.last_with(USER, "слишком длинное для модели")
    assert [b.split(":")[0] for b in _buttons(failed)] == ["regen"]
    telegram.send_text("x" * 4050, user_id=USER, language="ru")
    assert "не больше 4000 символов" in telegram.last_with(USER, "Слишком длинное сообщение").text


def test_a_message_over_the_limit_is_refused_with_the_limit(
    telegram: FakeTelegram, start_bot: Callable[..., BotRunner], served_gateway: ServedGateway
) -> None:
    """The bot learns the limit from the gateway's error code and value, not from its sentence."""
    start_bot()
    telegram.send_text("x" * 4001, user_id=USER)
    assert "at most 4000 characters" in telegram.last_with(USER, "too long").text
