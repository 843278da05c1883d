"""What agents and apps ask of /v1, with the official `openai` client, the served gateway and a real
worker with the default model: structured output, streamed usage, stop sequences."""

from __future__ import annotations

import enum
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest
from openai import OpenAI
from pydantic import BaseModel, ConfigDict, Field

from tests.conftest import API_KEY, ServedGateway

pytestmark = pytest.mark.slow


class Continent(enum.StrEnum):
    EUROPE = "Europe"
    ASIA = "Asia"
    AFRICA = "Africa"
    AMERICA = "America"
    OCEANIA = "Oceania"


class Kind(enum.StrEnum):
    MUSEUM = "museum"
    PARK = "park"
    MONUMENT = "monument"
    BUILDING = "building"


class Landmark(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=40)
    kind: Kind


class City(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=40)
    country: str = Field(max_length=40)
    continent: Continent
    population: int
    capital: bool
    landmarks: list[Landmark] = Field(min_length=1, max_length=3)


CITIES = [
    "Москва", "Paris", "Токио", "Cairo", "Сидней", "Berlin", "Пекин", "Lima", "Рим", "Nairobi",
    "Казань", "Toronto", "Мадрид", "Seoul", "Варшава", "Mexico City", "Прага", "Oslo", "Дели", "Lisbon",
]  # fmt: skip


@pytest.fixture
def client(served_gateway: ServedGateway) -> OpenAI:
    return OpenAI(base_url=f"{served_gateway.url}/v1", api_key=API_KEY, max_retries=0, timeout=600)


def test_parse_gives_a_valid_object_twenty_times_out_of_twenty(
    client: OpenAI, real_worker: Callable[..., Path]
) -> None:
    """`client.chat.completions.parse` with a Pydantic model of nested objects, enums and arrays:
    every sampled answer, in Russian or English, is an instance (the grammar holds it while it is
    written; nothing is retried)."""
    real_worker(MAX_TOKENS="400", PARALLEL="4", N_CTX="1024")

    def ask(n: int) -> City:
        completion = client.chat.completions.parse(
            model="local",
            messages=[{"role": "user", "content": f"Describe the city {CITIES[n]} for a travel guide."}],
            response_format=City,
            temperature=0.8,
            seed=n,
            user=f"traveller-{n}",
        )
        choice = completion.choices[0]
        assert choice.finish_reason == "stop", choice
        assert choice.message.parsed is not None
        return choice.message.parsed

    with ThreadPoolExecutor(4) as pool:
        cities = list(pool.map(ask, range(len(CITIES))))
    assert len(cities) == 20
    assert all(isinstance(city, City) and city.landmarks for city in cities)
    # The model really describes the city asked about, not a fixed example.
    assert len({city.name for city in cities}) >= 15


def test_a_streamed_json_object_with_its_usage_and_stop_sequences(
    client: OpenAI, real_worker: Callable[..., Path]
) -> None:
    real_worker(MAX_TOKENS="200")
    chunks = list(
        client.chat.completions.create(
            model="local",
            messages=[{"role": "user", "content": "Give the name and age of a fictional person as JSON."}],
            response_format={"type": "json_object"},
            stream=True,
            stream_options={"include_usage": True},
            temperature=0,
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert isinstance(json.loads(text), dict)
    # With include_usage the last chunk carries the usage and no choice.
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0

    counted = client.chat.completions.create(
        model="local",
        messages=[{"role": "user", "content": "Count from 1 to 10, separated by commas and spaces."}],
        stop=["5"],
        temperature=0,
    )
    content = counted.choices[0].message.content or ""
    assert counted.choices[0].finish_reason == "stop"
    assert "4" in content and "5" not in content and "6" not in content


def test_a_schema_the_server_cannot_enforce_is_refused_before_it_is_queued(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="local",
            messages=[{"role": "user", "content": "hi"}],
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "date", "schema": {"type": "string", "format": "date"}},
            },
        )
    assert "format" in refused.value.message
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="local", messages=[{"role": "user", "content": "hi"}], n=2)
    assert "n=1" in refused.value.message
