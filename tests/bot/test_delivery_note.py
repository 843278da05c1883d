"""The bot's delivery note (the task's client notes): what it writes is what it reads back."""

from __future__ import annotations

from bot.delivery import Target


def test_the_bots_delivery_note_reads_back_as_written_and_others_notes_are_not_its() -> None:
    target = Target(chat=-100, lang="ru", private=False, reply_to=5, thread=3)
    assert target.meta() == {"chat": -100, "lang": "ru", "private": False, "reply_to": 5, "thread": 3}
    assert Target.from_meta(target.meta()) == target
    target.placeholder = 77
    assert Target.from_meta({**target.meta(), "someone_elses": "x"}) == target
    assert Target.from_meta({"x": 1}) is None  # another client's notes
    assert Target.from_meta({"chat": "not a chat"}) is None
