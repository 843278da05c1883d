"""/v1/audio/transcriptions with the official openai client, against a worker process."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pytest
from openai import OpenAI

from fakes import speech
from tests.conftest import API_KEY, ServedGateway
from tests.voice.test_pipeline import heard


@pytest.fixture
def client(served_gateway: ServedGateway, fake_workers: Callable[..., Any]) -> OpenAI:
    # A real worker process (`python -m worker`, the scripted chat model, the default speech one).
    fake_workers(STT_MAX_SECONDS="20")
    return OpenAI(base_url=f"{served_gateway.url}/v1", api_key=API_KEY, max_retries=0, timeout=120)


def test_speech_becomes_text_in_openai_shapes(client: OpenAI, spoken: bytes) -> None:
    plain = client.audio.transcriptions.create(model="whisper-1", file=("note.ogg", spoken, "audio/ogg"))
    assert heard(plain.text), plain.text
    verbose = client.audio.transcriptions.create(
        model="whisper-1", file=("note.ogg", spoken), response_format="verbose_json", language="en"
    )
    assert heard(verbose.text) and verbose.language == "en"
    assert 2 < float(verbose.duration) < 5
    text = client.audio.transcriptions.create(
        model="whisper-1", file=("note.ogg", spoken), response_format="text"
    )
    assert heard(str(text))


def test_what_cannot_be_heard_is_a_clear_error(client: OpenAI, spoken: bytes) -> None:
    silent = client.audio.transcriptions.create(model="whisper-1", file=("quiet.ogg", speech.silence(3)))
    assert silent.text == ""
    with pytest.raises(openai.BadRequestError) as broken:
        client.audio.transcriptions.create(model="whisper-1", file=("broken.ogg", speech.corrupt(spoken)))
    assert broken.value.code == "voice_unreadable"
    with pytest.raises(openai.BadRequestError) as long:
        client.audio.transcriptions.create(model="whisper-1", file=("long.ogg", speech.silence(25)))
    assert long.value.code == "voice_too_long"
    with pytest.raises(openai.UnprocessableEntityError):
        client.audio.transcriptions.create(model="whisper-1", file=("empty.ogg", b""))


def test_a_language_the_speech_model_lacks_is_a_clear_error(
    served_gateway: ServedGateway, fake_workers: Callable[..., Any], spoken: bytes
) -> None:
    fake_workers(STT_MODEL="tiny.en")  # English only: the one model that lacks a language
    client = OpenAI(base_url=f"{served_gateway.url}/v1", api_key=API_KEY, max_retries=0, timeout=120)
    with pytest.raises(openai.BadRequestError) as language:
        client.audio.transcriptions.create(model="whisper-1", file=("note.ogg", spoken), language="ru")
    assert language.value.code == "voice_language"
    assert heard(client.audio.transcriptions.create(model="whisper-1", file=("note.ogg", spoken)).text)
