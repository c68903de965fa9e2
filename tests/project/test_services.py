"""Prove the integration run really reached PostgreSQL and Redis (fails, not skips, under CI)."""

import uuid

import pytest

pytestmark = pytest.mark.integration


@pytest.mark.django_db
def test_database_is_postgresql(postgres_db):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        (version,) = cursor.fetchone()
    assert version.startswith("PostgreSQL")
    assert connection.settings_dict["NAME"].startswith("test_")


def test_redis_round_trip(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    key = f"django-connectycube-test:{uuid.uuid4()}"
    try:
        client.set(key, "ok", ex=30)
        assert client.get(key) == b"ok"
    finally:
        client.delete(key)
