"""The simulator API against its OpenAPI document, fuzzed by schemathesis (bounded, ~30 s).

Every answer must be documented (status, content type, body schema) and none may be a 5xx.
The server holds a few users, so that examples reach the 2xx paths too.
"""

from __future__ import annotations

import json

import pytest
import schemathesis
from fixtures import SIMULATOR_AUTH, LiveServer
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from security_helpers import API_HEADERS, api_register, api_tweet

from minitwit.openapi import DOCUMENT

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
EXAMPLE_USER = "Roger Histand"  # the document's example username


# Loaded from the module rather than from the live server (schemathesis.pytest.from_fixture
# fails under pytest 9.2): the first test checks that the server serves exactly this document.
schema = schemathesis.openapi.from_dict(json.loads(json.dumps(DOCUMENT)))
# Invalid inputs too: whatever arrives, the answer is documented and never a 5xx.
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])


@pytest.fixture
def seeded(server: LiveServer) -> LiveServer:
    for name in (EXAMPLE_USER, "alice", "bob"):
        assert api_register(server, name).status_code == 204
    api_tweet(server, EXAMPLE_USER, "hello")
    server.post(f"/fllws/{EXAMPLE_USER}", data=json.dumps({"follow": "alice"}), headers=API_HEADERS)
    return server


def test_the_served_document_is_the_contract(server: LiveServer) -> None:
    response = server.get("/openapi.json")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert response.json() == json.loads(json.dumps(DOCUMENT))
    assert set(DOCUMENT["paths"]) == {"/latest", "/register", "/msgs", "/msgs/{username}", "/fllws/{username}"}


@schema.parametrize()
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_answers_as_documented(case, seeded: LiveServer) -> None:
    case.call_and_validate(base_url=seeded.url, headers={"Authorization": SIMULATOR_AUTH}, checks=CHECKS,
                           timeout=10)
