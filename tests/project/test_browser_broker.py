"""The browser test's broker choice and clean-up rules (tests/browser/broker.py)."""

from __future__ import annotations

import pytest

from tests.browser.broker import broker_url, celery_keys_created

FALLBACK = "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"TEST_BROKER_URL": "redis://h:6379/9", "CELERY_BROKER_URL": "redis://h/3"}, "redis://h:6379/9"),
        ({"CELERY_BROKER_URL": "redis://h:6379/3"}, "redis://h:6379/3"),
        ({"TEST_BROKER_URL": "", "CELERY_BROKER_URL": "memory://"}, FALLBACK),
        ({}, FALLBACK),
    ],
)  # fmt: skip
def test_broker_url_is_the_one_the_run_was_given(environ: dict[str, str], expected: str) -> None:
    assert broker_url(environ, FALLBACK) == expected


def test_only_new_celery_keys_are_removed() -> None:
    before = ["_kombu.binding.celery", "someone-elses-key", "celery"]
    after = [
        *before,
        "_kombu.binding.celery.pidbox",
        "_kombu.binding.celeryev",
        "_kombu.binding_permanent.celery",
        "_kombu.binding_deadlines",
        "celery\x06\x163",
        "unacked_index",
        "abc.reply.celery.pidbox",
        "an-app-cache-key",
    ]
    assert celery_keys_created(before, after) == [
        "_kombu.binding.celery.pidbox",
        "_kombu.binding.celeryev",
        "_kombu.binding_deadlines",
        "_kombu.binding_permanent.celery",
        "abc.reply.celery.pidbox",
        "celery\x06\x163",
        "unacked_index",
    ]
