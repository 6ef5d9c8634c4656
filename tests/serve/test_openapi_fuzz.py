"""Requests that schemathesis generates from the served ``/openapi.json``: none may get a server error, and none that
the document calls valid may be refused.

Bounded (a fixed number of examples per operation, loopback only) so that it runs in CI on every change. Generated
requests mix schema-valid and schema-violating bodies; each must get a 2xx or a clear 4xx, never a 5xx; a
schema-valid one must be accepted (``positive_data_acceptance``: no 400, 413 or 422), which holds because the served
document declares the gateway's own limits and applications (``backbone.serving.openapi``).
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error, positive_data_acceptance

pytestmark = pytest.mark.cluster


@pytest.fixture
def api_schema(served) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{served.http.base_url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_generated_request_gets_a_server_error(case: schemathesis.Case) -> None:
    case.call_and_validate(checks=[not_a_server_error, positive_data_acceptance], timeout=30)
