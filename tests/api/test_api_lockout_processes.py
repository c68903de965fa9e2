"""The login guard across worker processes: three Django processes share the counters in Redis,
as three WSGI workers of one site do, and guesses arrive at all of them at the same moment.

Each process has its own database holding the same account (the same pk), its own threads and
its own test client; the only thing they share is the cache. What is measured is how many of
the guesses were checked against a password at all (the authentication backend was asked).
The per-address limit is raised out of the way so that the account's bound is what is measured.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

PROCESSES = 3
LIMIT = 5

CHILD = """
import json, os, sys, threading, time
import django
django.setup()
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.hashers import make_password
from django.core.management import call_command
from django.test import Client

from django_connectycube.api import lockout

lock, checks = threading.Lock(), [0]

class CountingBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        with lock:
            checks[0] += 1
        time.sleep(0.2)  # every guess is inside the view while the others arrive
        return super().authenticate(request, username, password, **kwargs)

settings.AUTHENTICATION_BACKENDS = ["__main__.CountingBackend"]
settings.CONNECTYCUBE = {
    **settings.CONNECTYCUBE,
    "LOGIN_FAILURE_LIMIT": int(sys.argv[1]),
    "LOGIN_FAILURE_IP_LIMIT": 10**6,
}
lockout.DELAY = 600  # no gate reopens while the guesses arrive, however slowly
call_command("migrate", verbosity=0)
User = get_user_model()
User.objects.bulk_create(  # no signals: nothing is queued for ConnectyCube
    [User(username=f"victim{n}", password=make_password("right-password")) for n in range(9)]
)
print("ready", flush=True)
for line in sys.stdin:
    start, account, guesses, addresses = json.loads(line)
    checks[0], statuses, threads = 0, [], []
    def guess(address):
        client = Client(REMOTE_ADDR=address)
        time.sleep(max(0.0, start - time.time()))
        answer = client.post("/api/connectycube/login/", {"username": account, "password": "guess"},
                             content_type="application/json")
        with lock:
            statuses.append(answer.status_code)
    for n in range(guesses):
        address = f"198.51.100.{n % addresses + 1}"
        threads.append(threading.Thread(target=guess, args=(address,)))
    for thread in threads: thread.start()
    for thread in threads: thread.join()
    print(json.dumps({"checks": checks[0], "statuses": statuses}), flush=True)
"""


@pytest.fixture(scope="module")
def workers(tmp_path_factory):
    url = os.environ.get("CACHE_URL", "")
    if not url.startswith(("redis://", "rediss://")):
        url = "redis://127.0.0.1:6379/0"
    from tests.conftest import tcp_reachable, unavailable

    if not tcp_reachable(url, 6379):
        unavailable(f"needs Redis at {url} (unreachable)")
    folder: Path = tmp_path_factory.mktemp("lockout-processes")
    prefix = f"lockout-processes-{uuid.uuid4().hex}"  # never cleared: the db may be shared
    children = []
    for n in range(PROCESSES):
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "CACHE_URL": url,
            "CACHE_KEY_PREFIX": prefix,
            "DATABASE_URL": f"sqlite:///{folder / f'worker{n}.sqlite3'}",
            "CELERY_BROKER_URL": "memory://",
        }
        children.append(
            subprocess.Popen(
                [sys.executable, "-c", CHILD, str(LIMIT)],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                cwd=Path(__file__).resolve().parents[2],
            )
        )
    for child in children:
        assert child.stdout.readline().strip() == "ready"
    yield children
    for child in children:
        child.stdin.close()
        child.wait(timeout=60)


def storm(workers, account: str, guesses: int, addresses: int) -> tuple[int, Counter[int]]:
    """``guesses`` wrong passwords for ``account`` spread over the processes, all released at
    the same moment; the password checks made and the answers given."""
    start = time.time() + 2.0  # every thread of every process is waiting by then
    for n, child in enumerate(workers):
        share = guesses // PROCESSES + (n < guesses % PROCESSES)
        child.stdin.write(json.dumps([start, account, share, addresses]) + "\n")
        child.stdin.flush()
    checks, statuses = 0, Counter()
    for child in workers:
        result = json.loads(child.stdout.readline())
        checks += result["checks"]
        statuses.update(result["statuses"])
    return checks, statuses


@pytest.mark.parametrize(
    ("account", "guesses", "addresses", "bound"),
    [
        ("victim0", 40, 1, LIMIT),
        ("victim1", 200, 1, LIMIT),
        # Each further address of an attacker wins its own gate once: LIMIT - 1 free ones
        # for the whole account, then one per address.
        ("victim2", 40, 10, LIMIT - 1 + 10),
        ("victim3", 200, 10, LIMIT - 1 + 10),
        ("nobody", 200, 1, LIMIT),  # an unknown name is counted like a real account
    ],
)
def test_concurrent_guesses_over_three_processes_are_checked_within_the_bound(
    workers, account, guesses, addresses, bound
):
    checks, statuses = storm(workers, account, guesses, addresses)
    print(f"{guesses} guesses from {addresses} address(es): {checks} checked")
    assert 1 <= checks <= bound
    assert statuses[401] == checks
    assert statuses[429] == guesses - checks
