"""The bot's client reads the gateway's errors by their codes (fast: the gateway's replies are given)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from bot.gateway import GatewayClient, GatewayRejected, GatewayUnavailable
from shared.schemas import ErrorCode


def _client(status: int, body: object) -> GatewayClient:
    def reply(_request: httpx.Request) -> httpx.Response:
        return (
            httpx.Response(status, json=body)
            if not isinstance(body, str)
            else httpx.Response(status, text=body)
        )

    return GatewayClient("http://gateway", "k" * 16, transport=httpx.MockTransport(reply))


def _chat(client: GatewayClient) -> None:
    asyncio.run(client.chat("tg:1", "hi", "1", "key", {}))


def test_a_full_queue_is_told_apart_from_an_outage() -> None:
    with pytest.raises(GatewayUnavailable) as full:
        _chat(_client(503, {"detail": "any words at all", "code": ErrorCode.QUEUE_FULL}))
    assert full.value.busy
    with pytest.raises(GatewayUnavailable) as down:
        _chat(_client(503, {"detail": "Too many words", "code": ErrorCode.QUEUE_UNAVAILABLE}))
    assert not down.value.busy
    with pytest.raises(GatewayUnavailable) as proxy:
        _chat(_client(502, "<html>Bad Gateway</html>"))  # a proxy in front answers its own way
    assert not proxy.value.busy


def test_a_refusal_carries_its_code_and_limit() -> None:
    with pytest.raises(GatewayRejected) as refused:
        _chat(_client(422, {"detail": "reworded freely", "code": "text_too_long", "limit": 99}))
    assert refused.value.error.code == ErrorCode.TEXT_TOO_LONG and refused.value.error.limit == 99
    assert refused.value.detail == "reworded freely"


def test_the_bot_speaks_in_shared_types_without_loading_the_database_layer() -> None:
    """Enums and schemas come from modules free of SQLAlchemy: the bot process does not load it."""
    import subprocess
    import sys

    code = "import sys, bot.__main__, bot.app; print('sqlalchemy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
