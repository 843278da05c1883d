"""Text that breaks naive systems: emoji, right-to-left scripts, markup, oversized and odd input."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from tests.helpers import status

CASES = {
    "10 kB of emoji": "😀👍🏽🇺🇦" * 400,  # 2,000 characters, 10 kB of UTF-8
    "right-to-left": "مرحبا كيف حالك؟ שלום מה שלומך? " * 60,
    "mixed direction": "abc \u202eevil\u202c def \u200f ok",
    "zero-width and combining": "e\u0301\u200b\u200d" * 500,
}


@pytest.mark.parametrize("name", list(CASES))
def test_unusual_text_is_answered_or_refused_clearly(
    client: TestClient, run_jobs: Callable[[], None], name: str
) -> None:
    """Figure held: accepted (202) and finished, or failed with a readable message; never a 500."""
    response = client.post("/api/chat", json={"user_id": "odd", "text": CASES[name]})
    assert response.status_code == 202, response.text
    run_jobs()
    body = status(client, response.json()["task_id"])
    assert body["status"] in ("finished", "failed"), body
    if body["status"] == "failed":
        assert body["finish_reason"] == "context_length" and "too long" in body["error"]
    else:
        assert CASES[name][:20] in body["answer"]


def test_a_conversation_longer_than_the_window_keeps_going(
    client: TestClient, run_jobs: Callable[[], None]
) -> None:
    """Figure held: 30 turns of 3,000 characters (far beyond the window): 30/30 answered."""
    ids = [
        client.post("/api/chat", json={"user_id": "long", "text": f"{n} " + "w" * 3000}).json()["task_id"]
        for n in range(30)
    ]
    run_jobs()
    assert [status(client, t)["status"] for t in ids] == ["finished"] * 30
