"""Who may do what: the operator's key, the bot's key, and personal credentials (issue: trust)."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.services import credentials
from shared.config import DatabaseSettings, GatewaySettings, ModelSettings, QueueSettings
from shared.db import Database
from shared.models import Credential, CredentialKind, Task
from tests.conftest import API_KEY, BOT_API_KEY, ServedGateway, make_client


def _token(db: Database, user_id: str, kind: CredentialKind = CredentialKind.API) -> dict[str, str]:
    token, _ = credentials.issue(db, user_id, kind, timedelta(days=1))
    return {"Authorization": f"Bearer {token}"}


BOT = {"X-API-Key": BOT_API_KEY}
OPERATOR = {"X-API-Key": API_KEY}


@pytest.fixture
def client(client: TestClient) -> TestClient:
    """The gateway with no key of its own: each request says who is asking."""
    del client.headers["X-API-Key"]
    return client


def _bare(client: TestClient) -> TestClient:
    del client.headers["X-API-Key"]
    return client


def _chat(client: TestClient, headers: dict[str, str], text: str, **fields: object) -> str:
    response = client.post("/api/chat", json={"text": text, **fields}, headers=headers)
    assert response.status_code == 202, response.text
    return str(response.json()["task_id"])


def test_a_person_reaches_only_their_own_user_and_tasks(
    client: TestClient, db: Database, run_jobs: Callable[[], None]
) -> None:
    alice, bob = _token(db, "web:alice"), _token(db, "web:bob")
    # Alice names Bob in the body: ignored, the message is hers.
    task = _chat(client, alice, "mine", user_id="web:bob")
    run_jobs()
    with db.reading() as session:
        owner = session.get(Task, task)
        assert owner is not None
    assert client.get("/api/users/web:alice/history", headers=alice).json()[0]["question"] == "mine"
    assert client.get("/api/users/web:bob/history", headers=OPERATOR).json() == []

    # Every route naming Alice's task or user is closed to Bob.
    for method, path in [
        ("GET", f"/api/status/{task}"),
        ("GET", f"/api/tasks/{task}/events"),
        ("POST", f"/api/tasks/{task}/cancel"),
        ("POST", f"/api/tasks/{task}/regenerate"),
    ]:
        assert client.request(method, path, headers=bob).status_code == 404, path
    assert client.patch(f"/api/tasks/{task}", json={"delivered": True}, headers=bob).status_code == 404
    for method, path in [
        ("GET", "/api/users/web:alice/history"),
        ("GET", "/api/users/web:alice/settings"),
        ("GET", "/api/users/web:alice/latest-task"),
        ("GET", "/api/users/web:alice/stats"),
        ("DELETE", "/api/users/web:alice"),
        ("POST", "/api/users/web:alice/invites"),
        ("GET", "/api/users/web:alice/access"),
    ]:
        assert client.request(method, path, headers=bob).status_code == 403, path
    assert (
        client.put("/api/users/web:alice/persona", json={"persona": "coder"}, headers=bob).status_code == 403
    )
    # The operator's views are the operator's.
    for path in ("/metrics", "/api/system", "/api/tasks/undelivered?user_prefix=", "/api/access"):
        assert client.get(path, headers=bob).status_code == 403, path

    # Alice herself may do all of it.
    assert client.get(f"/api/status/{task}", headers=alice).json()["status"] == "finished"
    assert client.get("/api/users/web:alice/stats", headers=alice).json()["messages"] == 1
    assert client.post(f"/api/tasks/{task}/regenerate", headers=alice).status_code == 202
    assert client.get("/api/me", headers=alice).json() == {
        "role": "person",
        "user_id": "web:alice",
        "chat_id": None,
    }


def test_people_cannot_write_delivery_notes(client: TestClient, db: Database) -> None:
    """A delivery note names the Telegram chat an answer goes to after a restart: only the bot's."""
    person = _token(db, "tg:42")
    refused = client.post("/api/chat", json={"text": "hi", "client_meta": {"chat": 1}}, headers=person)
    assert refused.status_code == 403
    task = _chat(client, person, "hi")
    assert (
        client.patch(f"/api/tasks/{task}", json={"client_meta": {"chat": 1}}, headers=person).status_code
        == 403
    )
    assert (
        client.patch(f"/api/tasks/{task}", json={"client_meta": {"chat": 42}}, headers=BOT).status_code == 200
    )


def test_the_bot_acts_for_telegram_users_only(client: TestClient, db: Database) -> None:
    web_task = _chat(client, _token(db, "web:carol"), "from the web")
    assert (
        client.post("/api/chat", json={"user_id": "web:carol", "text": "x"}, headers=BOT).status_code == 403
    )
    assert client.post("/api/chat", json={"text": "x"}, headers=BOT).status_code == 422
    assert client.get("/api/users/web:carol/history", headers=BOT).status_code == 403
    assert client.get(f"/api/status/{web_task}", headers=BOT).status_code == 404
    assert client.get("/api/tasks/undelivered?user_prefix=", headers=BOT).status_code == 403
    assert client.get("/api/tasks/undelivered?user_prefix=tg:", headers=BOT).status_code == 200
    assert client.get("/metrics", headers=BOT).status_code == 403
    refused = client.post(
        "/v1/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "x"}]},
        headers=BOT,
    )
    assert refused.status_code == 403 and refused.json()["error"]["type"] == "permission_error"
    tg_task = _chat(client, BOT, "from Telegram", user_id="tg:7", chat_id="7")
    assert client.get(f"/api/status/{tg_task}", headers=BOT).status_code == 200
    # Narrowed to the person who pressed a button, the bot touches only that person's tasks.
    presser = {**BOT, "X-Acting-For": "tg:8"}
    assert client.post(f"/api/tasks/{tg_task}/cancel", headers=presser).status_code == 404
    assert (
        client.post(f"/api/tasks/{tg_task}/cancel", headers={**BOT, "X-Acting-For": "tg:7"}).status_code
        == 200
    )
    assert client.get("/api/me", headers={**BOT, "X-Acting-For": "web:carol"}).status_code == 401
    # The operator sees everything.
    assert client.get(f"/api/status/{web_task}", headers=OPERATOR).status_code == 200
    assert client.get("/metrics", headers=OPERATOR).status_code == 200


def test_credentials_that_do_not_open_anything(client: TestClient, db: Database) -> None:
    invite = _token(db, "web:dave", CredentialKind.INVITE)  # an invite is not a session
    expired, _ = credentials.issue(db, "web:dave", CredentialKind.API, timedelta(seconds=-1))
    for headers in (invite, {"Authorization": f"Bearer {expired}"}, {"X-API-Key": "aat_guess"}, {}):
        response = client.get("/api/me", headers=headers)
        assert response.status_code == 401 and response.json()["detail"]
    # The database keeps hashes only.
    with db.reading() as session:
        stored = session.scalars(select(Credential.token_hash)).all()
    assert expired not in stored and credentials.digest(expired) in stored


def test_a_web_session_lives_in_a_strict_cookie_and_dies_on_sign_out(
    client: TestClient, db: Database
) -> None:
    invite, _ = credentials.issue(db, "web:erin", CredentialKind.INVITE, timedelta(hours=1))
    page = client  # a browser: no key of its own, a cookie jar
    signed = page.post("/api/session", json={"invite": invite})
    assert signed.status_code == 200 and signed.json()["user_id"] == "web:erin"
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert page.post("/api/session", json={"invite": invite}).status_code == 401  # once only
    assert page.get("/api/me").json()["user_id"] == "web:erin"
    session_value = page.cookies["ai_assistant_session"]
    assert page.delete("/api/session").status_code == 204
    assert "ai_assistant_session" not in page.cookies
    # A copy of the cookie made before signing out opens nothing now.
    page.cookies.set("ai_assistant_session", session_value)
    assert page.get("/api/me").status_code == 401
    # API tokens are for headers, never cookies (a cookie rides along with any same-site request).
    token, _ = credentials.issue(db, "web:erin", CredentialKind.API, None)
    page.cookies.set("ai_assistant_session", token)
    assert page.get("/api/me").status_code == 401
    assert page.get("/api/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_ids_with_a_slash_can_be_read_and_deleted(client: TestClient) -> None:
    _chat(client, OPERATOR, "hello", user_id="web:a/b")
    assert client.get("/api/users/web:a/b/stats", headers=OPERATOR).json()["messages"] == 1
    assert client.delete("/api/users/web:a/b", headers=OPERATOR).status_code == 204
    assert client.get("/api/users/web:a/b/stats", headers=OPERATOR).json()["messages"] == 0


# --- limits -----------------------------------------------------------------------------------


def test_answers_in_flight_per_person_are_capped(
    gateway_settings: GatewaySettings, db_url: str, queue_settings: QueueSettings, db: Database
) -> None:
    settings = gateway_settings.model_copy(update={"max_active_per_user": 2})
    with _bare(make_client(settings, db_url, queue_settings)) as client:
        alice = _token(db, "web:alice")
        _chat(client, alice, "one")
        _chat(client, alice, "two")
        third = client.post("/api/chat", json={"text": "three"}, headers=alice)
        assert third.status_code == 429 and third.json()["detail"].startswith("You already have 2")
        assert _chat(client, _token(db, "web:bob"), "someone else")  # others are not affected


def test_regenerate_is_refused_while_the_conversation_has_an_answer_in_flight(
    client: TestClient, db: Database, run_jobs: Callable[[], None]
) -> None:
    alice = _token(db, "web:alice")
    first = _chat(client, alice, "first")
    run_jobs()
    _chat(client, alice, "second")  # queued, not answered
    refused = client.post(f"/api/tasks/{first}/regenerate", headers=alice)
    assert refused.status_code == 409 and "still being written" in refused.json()["detail"]


def test_v1_clamps_max_tokens_and_refuses_what_cannot_fit(
    gateway_settings: GatewaySettings, db_url: str, queue_settings: QueueSettings, db: Database
) -> None:
    limits = ModelSettings(_env_file=None, max_tokens=100, n_ctx=512)
    with _bare(make_client(gateway_settings, db_url, queue_settings, limits)) as client:
        _clamps_and_refuses(client, db)


def _clamps_and_refuses(client: TestClient, db: Database) -> None:
    person = _token(db, "web:frank")
    question = {"role": "user", "content": "hi"}
    body = {"model": "m", "max_tokens": 32768, "messages": [question], "user": "x"}
    with client.stream(
        "POST", "/v1/chat/completions", json={**body, "stream": True}, headers=person
    ) as response:
        assert response.status_code == 200  # hung up at once: the answer is canceled, its task stays
    with db.reading() as session:
        (task,) = session.query(Task).all()
        assert task.max_tokens == 100
    # `user` is ignored with a personal token: the conversation is the token holder's.
    assert client.get("/api/users/web:frank/stats", headers=person).json()["messages"] == 1
    huge = {"role": "system", "content": "x" * (512 * 8 + 1)}
    refused = client.post("/v1/chat/completions", json={**body, "messages": [huge, question]}, headers=person)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "context_length_exceeded"


def test_open_streams_are_capped_per_person_and_end_by_themselves(
    gateway_settings: GatewaySettings, db_url: str, queue_settings: QueueSettings, db: Database
) -> None:
    settings = gateway_settings.model_copy(update={"max_streams_per_user": 1, "stream_max_seconds": 1})
    with _bare(make_client(settings, db_url, queue_settings)) as client:
        alice = _token(db, "web:alice")
        task = _chat(client, alice, "waits in the queue")  # no worker: the stream would never end
        with client.stream("GET", f"/api/tasks/{task}/events", headers=alice) as first:
            assert first.status_code == 200
            second = client.get(f"/api/tasks/{task}/events", headers=alice)
            assert second.status_code == 429 and second.json()["detail"].startswith("At most 1")
            events = "".join(first.iter_text())  # ends after its lifetime, with no final event
        assert "event: status" in events and "event: done" not in events
        # Closed streams free their place.
        with client.stream("GET", f"/api/tasks/{task}/events", headers=alice) as again:
            assert again.status_code == 200


# --- before the body is read ------------------------------------------------------------------


@pytest.fixture
def raw(served_gateway: ServedGateway) -> Iterator[Callable[[bytes], bytes]]:
    """Send raw bytes to the served gateway and read its whole reply (it closes the connection)."""
    opened: list[socket.socket] = []

    def send(request: bytes) -> bytes:
        conn = socket.create_connection(("127.0.0.1", served_gateway.port), timeout=10)
        opened.append(conn)
        conn.sendall(request)
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
        return reply

    yield send
    for conn in opened:
        conn.close()


def _post(path: str, headers: str, length: int, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{headers}"
        f"Content-Length: {length}\r\n\r\n"
    ).encode() + body


def test_a_huge_body_is_refused_before_it_is_read(raw: Callable[[bytes], bytes]) -> None:
    # 10 MB announced, 5 bytes sent: a server that read the body would wait for the rest (and time
    # out this test); ours answers at once and closes.
    ten_mb = 10 * 1024 * 1024
    no_key = raw(_post("/api/chat", "", ten_mb, b'{"te'))
    assert no_key.startswith(b"HTTP/1.1 401")
    with_key = raw(_post("/api/chat", f"X-API-Key: {API_KEY}\r\n", ten_mb, b'{"te'))
    assert with_key.startswith(b"HTTP/1.1 413")
    # Malformed JSON without a key: 401 (who is asking comes first), not a parse error.
    broken = raw(_post("/v1/chat/completions", "", 3, b"{{{"))
    assert broken.startswith(b"HTTP/1.1 401") and b"invalid_api_key" in broken


def test_a_chunked_body_over_the_limit_is_refused(
    gateway_settings: GatewaySettings, db_url: str, queue_settings: QueueSettings
) -> None:
    settings = gateway_settings.model_copy(update={"max_body_bytes": 2048})
    served = ServedGateway(settings, DatabaseSettings(_env_file=None, database_url=db_url), queue_settings)
    served.start()
    try:

        def chunked(body: bytes) -> bytes:
            head = (
                f"POST /api/chat HTTP/1.1\r\nHost: x\r\nX-API-Key: {API_KEY}\r\nConnection: close\r\n"
                "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            ).encode()
            with socket.create_connection(("127.0.0.1", served.port), timeout=10) as conn:
                conn.sendall(head + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")
                reply = b""
                while chunk := conn.recv(65536):
                    reply += chunk
            return reply

        too_big = json.dumps({"user_id": "u", "text": "x" * 3000}).encode()
        assert chunked(too_big).startswith(b"HTTP/1.1 413")
        small = json.dumps({"user_id": "u", "text": "hello"}).encode()
        assert chunked(small).startswith(b"HTTP/1.1 202")
    finally:
        served.stop()


def test_a_user_id_in_a_path_longer_than_the_column_is_refused(client: TestClient) -> None:
    """Found by the schema fuzzer on PostgreSQL: a 129-character id in the path was a 500 there."""
    long_id = "u" * 129
    for method, route, body in [
        ("PUT", "speech-language", {"language": "ru"}),
        ("PUT", "persona", {"persona": "concise"}),
        ("GET", "quota", None),
    ]:
        response = client.request(method, f"/api/users/{long_id}/{route}", json=body, headers=OPERATOR)
        assert response.status_code == 422, (route, response.text)
    longest = client.put(f"/api/users/{'u' * 128}/speech-language", json={"language": "ru"}, headers=OPERATOR)
    assert longest.status_code == 200


def test_a_blocked_person_is_out_by_every_way_in_and_cannot_delete_the_block(
    client: TestClient, db: Database
) -> None:
    """A block an admin puts on a Telegram user shuts their web session and API token too, at once
    (they were used, so the gateway had them cached); deleting themselves keeps the block."""
    person = "tg:4242"
    token = _token(db, person)
    invite, _ = credentials.issue(db, person, CredentialKind.INVITE, timedelta(hours=1))
    page = client  # a browser: no key of its own, a cookie jar (a header, when sent, goes first)
    assert page.post("/api/session", json={"invite": invite}).status_code == 200
    assert client.get("/api/me", headers=token).status_code == 200
    assert page.get("/api/me").status_code == 200
    _chat(client, token, "before the block")

    blocked = client.put(f"/api/users/{person}/access", json={"access": "blocked"}, headers=BOT)
    assert blocked.status_code == 200 and blocked.json()["access"] == "blocked"
    assert client.get("/api/me", headers=token).status_code == 401
    assert client.post("/api/chat", json={"text": "after"}, headers=token).status_code == 401
    assert page.get("/api/me").status_code == 401

    # Asking to be forgotten, with the operator's key (theirs opens nothing now): data goes, the block stays.
    assert client.delete(f"/api/users/{person}", headers=OPERATOR).status_code == 204
    access = client.get(f"/api/users/{person}/access", headers=BOT).json()
    assert access["access"] == "blocked"
    assert client.get(f"/api/users/{person}/history", headers=OPERATOR).json() == []
    with db.reading() as session:
        assert session.scalars(select(Credential)).all() == []
    # Allowed again, they need new credentials: the old ones were deleted with their data.
    client.put(f"/api/users/{person}/access", json={"access": "allowed"}, headers=BOT)
    assert client.get("/api/me", headers=token).status_code == 401
    # Someone who was never blocked is deleted whole.
    _token(db, "tg:7")
    assert client.delete("/api/users/tg:7", headers=OPERATOR).status_code == 204
    assert client.get("/api/users/tg:7/access", headers=BOT).json()["access"] is None


def test_a_person_lists_and_revokes_their_own_sessions_and_tokens(client: TestClient, db: Database) -> None:
    alice, bob = _token(db, "web:alice"), _token(db, "web:bob")
    invite, _ = credentials.issue(db, "web:alice", CredentialKind.INVITE, timedelta(hours=1))
    assert client.post("/api/session", json={"invite": invite}).status_code == 200  # a signed-in page
    listed = client.get("/api/users/web:alice/credentials", headers=alice)
    assert listed.status_code == 200
    held = listed.json()
    assert sorted(c["kind"] for c in held) == ["api", "session"]  # the used invite is gone
    assert [c["current"] for c in held if c["kind"] == "api"] == [True]
    assert "aat_" not in listed.text and "aas_" not in listed.text  # never a secret

    # Nobody else's: Bob may not list Alice's, nor revoke hers through his own path.
    session_id = next(c["id"] for c in held if c["kind"] == "session")
    assert client.get("/api/users/web:alice/credentials", headers=bob).status_code == 403
    assert client.delete(f"/api/users/web:bob/credentials/{session_id}", headers=bob).status_code == 404
    assert client.get("/api/me").status_code == 200  # her page is still signed in

    # Alice signs her page out from elsewhere, then revokes the token she is using: both stop at once.
    assert client.delete(f"/api/users/web:alice/credentials/{session_id}", headers=alice).status_code == 204
    assert client.get("/api/me").status_code == 401
    token_id = next(c["id"] for c in held if c["kind"] == "api")
    assert client.delete(f"/api/users/web:alice/credentials/{token_id}", headers=alice).status_code == 204
    assert client.get("/api/me", headers=alice).status_code == 401
    assert client.get("/api/me", headers=bob).status_code == 200
    # The operator sees and revokes anyone's.
    assert [c["kind"] for c in client.get("/api/users/web:bob/credentials", headers=OPERATOR).json()] == [
        "api"
    ]


def test_make_token_revoke_ends_every_api_token_of_that_person(
    db: Database, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from api import invite

    monkeypatch.setenv("DATABASE_URL", db_url)
    tokens = [invite.api_token(db, "carol") for _ in range(2)]
    kept = invite.api_token(db, "dave")
    assert invite.main(["carol", "--revoke"]) == 0
    assert "Revoked 2 API token(s) of web:carol" in capsys.readouterr().out
    api_only = frozenset({CredentialKind.API})
    assert [credentials.resolve(db, t, api_only) for t in tokens] == [None, None]
    assert credentials.resolve(db, kept, api_only) is not None


def test_the_start_banner_holds_a_live_sign_in_only_until_the_owner_has_signed_in(db: Database) -> None:
    """Each `make run` used to print a fresh 24-hour owner link into its log. Now: a link lives an
    hour, each cancels the unopened ones before it, and once the owner has a session none is made."""
    from api import invite

    first = invite.owner_link(db, "http://127.0.0.1:8000")
    second = invite.owner_link(db, "http://127.0.0.1:8000")
    assert first and second and first != second
    secret = {link: link.split("#invite=", 1)[1] for link in (first, second)}
    invite_only = frozenset({CredentialKind.INVITE})
    assert credentials.resolve(db, secret[first], invite_only) is None  # cancelled by the next start
    (held,) = [c for c in _all_credentials(db) if c.kind == CredentialKind.INVITE]
    assert held.expires_at is not None
    assert timedelta(minutes=59) < held.expires_at - held.created_at <= timedelta(hours=1)
    credentials.redeem_invite(db, secret[second], timedelta(days=1))
    assert invite.owner_link(db, "http://127.0.0.1:8000") is None
    assert [c.kind for c in _all_credentials(db)] == [CredentialKind.SESSION]


def _all_credentials(db: Database) -> list[Credential]:
    with db.reading() as session:
        return list(session.scalars(select(Credential)).all())


def test_signing_out_everywhere_ends_every_session_and_token_of_that_person_only(
    client: TestClient, db: Database
) -> None:
    alice, bob = _token(db, "web:alice"), _token(db, "web:bob")
    invite, _ = credentials.issue(db, "web:alice", CredentialKind.INVITE, timedelta(hours=1))
    assert client.post("/api/session", json={"invite": invite}).status_code == 200
    assert client.get("/api/me", headers=alice).status_code == 200  # known to the gateway's cache
    assert client.delete("/api/users/web:alice/credentials", headers=bob).status_code == 403
    done = client.delete("/api/users/web:alice/credentials", headers=alice)
    assert done.status_code == 200 and done.json() == {"revoked": 2}
    assert client.get("/api/me", headers=alice).status_code == 401
    assert client.get("/api/me").status_code == 401  # the page's session too
    assert client.get("/api/me", headers=bob).status_code == 200
    # The bot reaches Telegram users only.
    assert client.delete("/api/users/web:bob/credentials", headers=BOT).status_code == 403
    assert client.delete("/api/users/tg:5/credentials", headers=BOT).json() == {"revoked": 0}


def test_make_token_days_gives_a_token_that_expires(
    db: Database, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from api import invite

    monkeypatch.setenv("DATABASE_URL", db_url)
    assert invite.main(["erin", "--api", "--days", "30"]) == 0
    printed = capsys.readouterr().out
    assert "for 30 days" in printed
    token = printed.strip().splitlines()[-1]
    (held,) = credentials.held_by(db, "web:erin")
    assert held.expires_at is not None
    assert timedelta(days=29) < held.expires_at - held.created_at <= timedelta(days=30)
    assert credentials.resolve(db, token, frozenset({CredentialKind.API})) is not None
    with pytest.raises(SystemExit):
        invite.main(["erin", "--days", "30"])  # a web link's life is INVITE_HOURS, not this
