"""Bad input generated from the OpenAPI schema (schemathesis): never a 500."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from api.auth import CallerRole
from api.main import create_app
from api.services import credentials
from shared.config import GatewaySettings
from shared.db import Database
from shared.models import CredentialKind
from tests.conftest import API_KEY, BOT_API_KEY, ServedGateway

# Only the schema is needed here; the requests go to a gateway served for the test.
SCHEMA = schemathesis.openapi.from_dict(
    create_app(GatewaySettings(_env_file=None, api_key=API_KEY)).openapi()
)

pytestmark = pytest.mark.slow


PERSON = "web:fuzzer"


@pytest.fixture
def answering(fake_workers: Callable[..., Any]) -> None:
    """One worker, so valid chat and completion requests get answered and nothing waits forever."""
    fake_workers()


@pytest.fixture(params=[CallerRole.OPERATOR, CallerRole.BOT, CallerRole.PERSON])
def role(request: pytest.FixtureRequest, db: Database) -> tuple[CallerRole, dict[str, str]]:
    """Each role's credential: the operator's key, the bot's, and one person's own token."""
    if request.param == CallerRole.OPERATOR:
        return request.param, {"X-API-Key": API_KEY}
    if request.param == CallerRole.BOT:
        return request.param, {"X-API-Key": BOT_API_KEY}
    token, _ = credentials.issue(db, PERSON, CredentialKind.API, None)
    return request.param, {"Authorization": f"Bearer {token}"}


@SCHEMA.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_makes_a_server_error(
    case: schemathesis.Case[Any],
    served_gateway: ServedGateway,
    answering: None,
    role: tuple[CallerRole, dict[str, str]],
) -> None:
    """Figure held: 30 generated requests per operation (valid and not) with each role's credential,
    0 responses of 500 or more, and no success on another person's user for the bot or a person."""
    kind, headers = role
    response = case.call(base_url=served_gateway.url, headers=headers, timeout=30)
    assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:300])
    named = (case.path_parameters or {}).get("user_id")
    if named is not None and response.status_code < 300 and kind != CallerRole.OPERATOR:
        allowed = named == PERSON if kind == CallerRole.PERSON else str(named).startswith("tg:")
        assert allowed, (kind, case.method, case.path, named, response.status_code)
