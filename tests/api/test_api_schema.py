"""The OpenAPI schema (drf-spectacular) and a schemathesis run over it: no request makes a 5xx,
and every error answer is a JSON body with a code.

schemathesis generates requests from the schema (positive and negative modes: valid and
invalid bodies, queries and path parameters, ``MAX_EXAMPLES`` each per operation) and sends
them, authenticated, through Django's WSGI handler in this process, against the emulator. Every
operation must have been reached past authentication at least once, so a run that only
collected 401s cannot pass. Both tools are optional extras, so the module is skipped without
them.
"""

from __future__ import annotations

import base64
from collections import Counter

import pytest
import schemathesis
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.wsgi import get_wsgi_application
from django.test import Client
from hypothesis import HealthCheck, assume, given, settings
from schemathesis.generation.modes import GenerationMode

from django_connectycube.conf import DEFAULTS
from django_connectycube.sync import push as sync
from tests.budget import examples

User = get_user_model()
SCHEMA = "/api/schema/?format=json"
MAX_EXAMPLES = examples(25)

pytestmark = [pytest.mark.usefixtures("no_broker"), pytest.mark.django_db]


@pytest.fixture
def cube(connectycube_emulator, settings):
    settings.CONNECTYCUBE = {
        **settings.CONNECTYCUBE,
        "RETRIES": 0,
        # The throttles would answer most generated requests with a 429 before any work.
        "API_THROTTLE_RATES": {scope: None for scope in DEFAULTS["API_THROTTLE_RATES"]},
        "LOGIN_FAILURE_LIMIT": 10_000,
        "LOGIN_FAILURE_IP_LIMIT": 10_000,
    }
    cache.clear()
    yield connectycube_emulator
    cache.clear()


def test_schema_documents_every_endpoint():
    schema = Client().get(SCHEMA).json()
    assert schema["openapi"].startswith("3.")
    prefix = "/api/connectycube/"
    assert {p.removeprefix(prefix) for p in schema["paths"]} >= {
        "login/",
        "logout/",
        "session/",
        "users/",
        "users/{user_id}/",
        "password-reset/",
    }
    login = schema["paths"][prefix + "login/"]["post"]
    assert set(login["responses"]) >= {"200", "401", "429", "503"}
    listing = schema["paths"][prefix + "users/"]["get"]
    names = {p["name"] for p in listing["parameters"]}
    assert names >= {"ids", "login", "email", "full_name", "phone", "external_id", "tags"}
    assert names >= {"page", "per_page", "ordering"}


@pytest.fixture
def keep_db_connection():
    """Like Django's test client: the WSGI handler must not close the test's connection (that
    would end the test transaction on PostgreSQL)."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def test_schemathesis_finds_no_server_error(cube, keep_db_connection):
    user = User.objects.create_user(
        username="alice", email="alice@example.com", password="alice-pass", phone="+4410"
    )
    sync.push_user(user.pk)
    for i in range(3):
        cube.create_user(login=f"user{i}", password="12345678", full_name=f"P {i}", tag_list="t")
    auth = "Basic " + base64.b64encode(b"alice:alice-pass").decode()
    schema = schemathesis.openapi.from_wsgi(SCHEMA, get_wsgi_application())
    statuses: Counter[int] = Counter()
    reached: Counter[str] = Counter()  # answers past authentication, per operation
    problems: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 6

    def send(case) -> None:
        # A multipart form is a set of named fields; some schemathesis releases still generate
        # other bodies for it in negative mode, which no client can encode.
        assume(case.media_type != "multipart/form-data" or isinstance(case.body, dict))
        response = case.call(headers={"Authorization": auth})
        status = response.status_code
        statuses[status] += 1
        where = f"{case.method.upper()} {case.formatted_path} -> {status}"
        if status not in (401, 403):
            reached[case.operation.label] += 1
        if status >= 500:
            problems.append(f"{where}: server error {response.text[:200]}")
        if status >= 400:
            problems.extend(f"{where}: {p}" for p in json_error_problems(response))

    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            run = settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )(given(case=operation.as_strategy(mode))(send))
            run()
    print(f"schemathesis: {sum(statuses.values())} requests, statuses {dict(statuses)}")
    assert problems == []
    assert sum(statuses.values()) >= len(operations) * 10
    assert statuses[200] > 0
    assert {op.label for op in operations} == set(reached), "operations never authenticated"


def json_error_problems(response) -> list[str]:
    """What is wrong with an error answer: not JSON, or a detail without a stable code."""
    headers = {name.lower(): value for name, value in response.headers.items()}
    content_type = headers.get("content-type", "")
    if isinstance(content_type, list):
        content_type = content_type[0] if content_type else ""
    if not content_type.startswith("application/json"):
        return [f"not JSON ({content_type}): {response.text[:120]!r}"]
    try:
        body = response.json()
    except ValueError:
        return [f"invalid JSON: {response.text[:120]!r}"]
    if not isinstance(body, dict) or not body:
        return [f"not an error object: {body!r}"]
    if "detail" in body and not isinstance(body.get("code"), str):
        return [f"detail without a code: {body!r}"]
    return []
