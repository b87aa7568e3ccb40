"""The JSON API against its own OpenAPI description, fuzzed by schemathesis: no 500s, replies as described."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from arena.web import create_app
from arena.web.security import COOKIE_NAME

from .factory import TEST_OPTIONS, fill_store, settings_for, write_challenges

HOST = "testserver"


@pytest.fixture
def voting_app(tmp_path, sqlite_url):
    web = settings_for(tmp_path, sqlite_url, write_challenges(tmp_path / "challenges"))
    fill_store(web, samples=1)
    return create_app(web, TEST_OPTIONS)


@pytest.fixture
def credentials(voting_app):
    """A real session: its cookie, CSRF token and this server's Origin, so fuzzed POSTs get past the door."""
    from starlette.testclient import TestClient

    client = TestClient(voting_app, base_url=f"http://{HOST}")
    token = client.get("/api/session").json()["csrf_token"]
    opened = client.post(
        "/api/battles", headers={"Origin": f"http://{HOST}", "X-CSRF-Token": token}
    )
    assert (
        opened.status_code == 200
    )  # the session has an open battle, so POST /api/battles can answer 200
    return {
        "headers": {"Host": HOST, "Origin": f"http://{HOST}", "X-CSRF-Token": token},
        "cookies": {COOKIE_NAME: client.cookies[COOKIE_NAME]},
    }


@pytest.mark.slow
def test_the_api_matches_its_description_and_never_fails_with_500(voting_app, credentials):
    """Every operation, a dozen generated requests each (schemathesis's pytest plugin predates pytest 9)."""
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", voting_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 5
    calls = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=12,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case):
            response = case.call(headers=credentials["headers"], cookies=credentials["cookies"])
            calls.append(response.status_code)
            assert response.status_code < 500, response.text
            case.validate_response(response)

        check()
    assert len(calls) >= 30 and 200 in calls


def test_the_description_lists_every_json_endpoint(voting_app):
    from starlette.testclient import TestClient

    document = TestClient(voting_app).get("/api/openapi.json").json()
    assert set(document["paths"]) == {
        "/api/health",
        "/api/session",
        "/api/battles",
        "/api/votes",
        "/img/{battle_id}/{slot}",
    }
    vote = document["paths"]["/api/votes"]["post"]
    assert {"409", "410", "404", "422", "413"} <= set(vote["responses"])
