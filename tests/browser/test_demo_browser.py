"""The demo as a person uses it: Chromium clicks through the running example site.

Site (runserver), emulator and a Celery worker run as real processes; Playwright drives Debian's
Chromium. Screenshots of each step land in ``test-artifacts/browser/``.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import requests

from tests.browser.broker import broker_url, cleaned_up
from tests.conftest import unavailable
from tests.worker import wait_until

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def png(width: int = 24, height: int = 24, rgb: tuple[int, int, int] = (220, 60, 40)) -> bytes:
    """A real PNG image, so the browser can decode and show it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * width
    raw = zlib.compress(row * height)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def wait_http(url: str, timeout: float = 30) -> None:
    def up() -> bool:
        try:
            return requests.get(url, timeout=2).status_code < 500
        except requests.RequestException:
            return False

    wait_until(up, timeout=timeout, interval=0.2)


@pytest.fixture(scope="module")
def chromium() -> str:
    path = next((p for p in CHROMIUM_CANDIDATES if os.path.exists(p)), None)
    if path is None:
        unavailable("needs Chromium (apt-get install chromium)")
    return path


@pytest.fixture(scope="module")
def demo(tmp_path_factory, chromium, redis_url):
    """Emulator + example site + Celery worker, as `make demo` runs them, on free ports."""
    if subprocess.run(["bash", "scripts/vendor_sdk.sh"], cwd=ROOT).returncode != 0:
        pytest.fail("installing the ConnectyCube SDK from npm failed")
    sdk = ROOT / "example_project" / "static" / "vendor" / "connectycube.min.js"
    if not sdk.exists():
        unavailable("needs npm to install the ConnectyCube JS SDK")
    workdir = tmp_path_factory.mktemp("demo")
    broker = broker_url(os.environ, redis_url)
    emulator_port, site_port = free_port(), free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "example_project.settings",
        "DATABASE_URL": f"sqlite:///{workdir / 'demo.sqlite3'}",
        "MEDIA_ROOT": str(workdir / "media"),
        "CELERY_BROKER_URL": broker,
        "CONNECTYCUBE_API_URL": f"http://127.0.0.1:{emulator_port}",
        "CONNECTYCUBE_APPLICATION_ID": "1",
        "CONNECTYCUBE_AUTH_KEY": "browser-key",
        "CONNECTYCUBE_AUTH_SECRET": "browser-secret",
        "PYTHONPATH": str(ROOT),
    }
    logs = workdir / "logs"
    logs.mkdir()
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(name: str, *args: str) -> None:
        out = open(logs / f"{name}.log", "wb")  # noqa: SIM115
        procs.append(
            subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        )

    py = sys.executable
    subprocess.run([py, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    # Only the keys this run's worker creates are removed afterwards, in this broker's database.
    with cleaned_up(broker):
        spawn(
            "emulator",
            py,
            "-m",
            "django_connectycube.emulator",
            "--port",
            str(emulator_port),
            "--app-id",
            "1",
            "--auth-key",
            "browser-key",
            "--auth-secret",
            "browser-secret",
        )
        spawn(
            "worker",
            py,
            "-m",
            "celery",
            "-A",
            "example_project",
            "worker",
            "-c",
            "2",
            "--without-gossip",
            "--without-mingle",
            "--loglevel=INFO",
        )
        spawn("site", py, "manage.py", "runserver", f"127.0.0.1:{site_port}", "--noreload")
        try:
            wait_http(f"http://127.0.0.1:{emulator_port}/_emulator/health")
            wait_http(f"http://127.0.0.1:{site_port}/")
            yield {
                "site": f"http://127.0.0.1:{site_port}",
                "emulator": f"http://127.0.0.1:{emulator_port}",
                "logs": logs,
            }
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            for log in logs.glob("*.log"):
                shutil.copy(log, ARTIFACTS / log.name)


def remote_users(demo) -> list[dict]:
    return requests.get(demo["emulator"] + "/_emulator/state", timeout=5).json()["users"]


def test_signup_profile_avatar_chat_identity_and_search(demo, chromium, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    avatar = tmp_path / "me.png"
    avatar.write_bytes(png())
    site = demo["site"]
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page()
        page.set_default_timeout(20_000)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))

        # A second user to find later, signed up the same way.
        for username, first in (("bob_browser", "Bob"), ("alice_browser", "Alice")):
            page.goto(f"{site}/signup/")
            page.fill("#id_username", username)
            page.fill("#id_email", f"{username}@example.com")
            page.fill("#id_first_name", first)
            page.fill("#id_last_name", "Tester")
            page.fill("#id_password1", "A-long-enough-pass-123")
            page.fill("#id_password2", "A-long-enough-pass-123")
            page.click("#signup-submit")
            expect(page).to_have_url(f"{site}/profile/")
            if username == "bob_browser":
                page.click("nav button")  # log out
        page.screenshot(path=str(ARTIFACTS / "1-signed-up.png"), full_page=True)

        page.fill("#id_first_name", "Alicia")
        page.set_input_files("#id_avatar", str(avatar))
        page.click("#profile-submit")
        expect(page.locator(".messages")).to_contain_text("Profile saved")

        def synced_with_avatar():
            users = {u["login"]: u for u in remote_users(demo)}
            alice = users.get("alice_browser")
            return (
                alice
                if alice and alice.get("full_name") == "Alicia Tester" and alice.get("avatar")
                else None
            )

        alice = wait_until(synced_with_avatar, timeout=30, interval=0.3)
        page.reload()
        expect(page.locator("#sync-state")).to_contain_text("synced")
        page.screenshot(path=str(ARTIFACTS / "2-profile-synced.png"), full_page=True)

        page.click("#nav-chat")
        expect(page.locator("#session-status")).to_contain_text(f"#{alice['id']}")
        expect(page.locator("#cube-login")).to_have_text("alice_browser")
        expect(page.locator("#cube-full-name")).to_have_text("Alicia Tester")
        avatar_img = page.locator("#cube-avatar")
        expect(avatar_img).to_be_visible()
        page.wait_for_function(
            "() => { const i = document.getElementById('cube-avatar');"
            " return i && i.complete && i.naturalWidth === 24; }"
        )
        page.screenshot(path=str(ARTIFACTS / "3-chat-identity.png"), full_page=True)

        page.fill("#search-input", "bob_browser")
        page.click("#search-submit")
        expect(page.locator("#api-results li")).to_have_count(1)
        expect(page.locator("#api-results li")).to_contain_text("bob_browser")
        expect(page.locator("#sdk-results li")).to_have_count(1)
        expect(page.locator("#sdk-results li")).to_contain_text("Bob Tester")
        page.screenshot(path=str(ARTIFACTS / "4-search.png"), full_page=True)
        page.fill("#search-input", "bob_brow")  # a prefix: the site's API finds the login
        page.click("#search-submit")
        expect(page.locator("#api-results li")).to_contain_text("bob_browser")
        page.fill("#search-input", "nobody_by_that_name")
        page.click("#search-submit")
        for results in ("#api-results", "#sdk-results"):
            expect(page.locator(f"{results} li")).to_have_count(1)
            expect(page.locator(f"{results} li.nothing-found")).to_have_text(
                "Nothing found for “nobody_by_that_name”."
            )
        assert page.locator("#error").inner_text() == ""
        assert errors == []

        # Delete the account: gone here and, after the worker runs, on ConnectyCube.
        page.goto(f"{site}/profile/delete/")
        page.click("#delete-submit")
        expect(page.locator(".messages")).to_contain_text("deleted")
        browser.close()
    wait_until(lambda: "alice_browser" not in {u["login"] for u in remote_users(demo)}, timeout=30)
