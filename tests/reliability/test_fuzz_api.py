"""Bad input generated from the OpenAPI schema (schemathesis): never a 500."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from api.main import create_app
from shared.config import GatewaySettings
from tests.conftest import API_KEY, ServedGateway

# Only the schema is needed here; the requests go to a gateway served for the test.
SCHEMA = schemathesis.openapi.from_dict(
    create_app(GatewaySettings(_env_file=None, api_key=API_KEY)).openapi()
)

pytestmark = pytest.mark.slow


@pytest.fixture
def answering(fake_workers: Callable[..., Any]) -> None:
    """One worker, so valid chat and completion requests get answered and nothing waits forever."""
    fake_workers()


@SCHEMA.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_makes_a_server_error(
    case: schemathesis.Case[Any], served_gateway: ServedGateway, answering: None
) -> None:
    """Figure held: 30 generated requests per operation (valid and not), 0 responses of 500 or more."""
    response = case.call(base_url=served_gateway.url, headers={"X-API-Key": API_KEY}, timeout=30)
    assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:300])
