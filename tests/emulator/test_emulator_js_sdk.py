"""Emulator: the official JS SDKs (connectycube 6.1.2 and 3.35.3), unchanged, under Node.

Each SDK runs a users/sessions/blobs scenario (``tests/js/sdk_check*.mjs``) against an emulator
at a new application's defaults. SDK 3 signs its sessions (the emulator here requires it) and
speaks only https, so its check goes through an https front with a certificate made here.

Skips with a reason when node/npm are missing or the npm registry is unreachable, unless ``CI``
is set: then it fails, so CI can never go green without having run the SDKs.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from django_connectycube.emulator import EmulatorServer
from tests.conftest import unavailable

JS_DIR = Path(__file__).parents[1] / "js"
#: npm package directory → the version package.json pins (one test each).
SDKS = {"connectycube": "6.1.2", "connectycube-3": "3.35.3"}


def _installed(package: str) -> str | None:
    manifest = JS_DIR / "node_modules" / package / "package.json"
    return json.loads(manifest.read_text())["version"] if manifest.exists() else None


@pytest.fixture(scope="module")
def sdk_ready() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        unavailable("needs node and npm on PATH to run the ConnectyCube JS SDK checks")
    if any(_installed(package) != version for package, version in SDKS.items()):
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=JS_DIR,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if result.returncode != 0:
            unavailable(f"npm could not install the ConnectyCube SDKs: {result.stderr[-500:]}")
    return JS_DIR


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, the https front's (Node trusts it by env)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("tls")
    key_file, cert_file = directory / "key.pem", directory / "cert.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return key_file, cert_file


def _run(script: str, args: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(
        ["node", script, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )
    steps: list[dict[str, Any]] = [
        json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")
    ]
    failed = [s for s in steps if s.get("ok") is False]
    assert result.returncode == 0 and not failed, (
        f"failed steps: {json.dumps(failed, indent=1)}\nstderr: {result.stderr[-2000:]}"
    )
    assert steps[-1] == {"summary": True, "failures": 0}
    assert len(steps) > 20


def test_js_sdk_6_1_2_against_a_default_application(sdk_ready: Path) -> None:
    with EmulatorServer(application_id=3, auth_key="sdk-key", auth_secret="sdk-secret") as server:
        assert server.emulator.v1_users_api is False
        _run("sdk_check.mjs", [server.url, "3", "sdk-key"], sdk_ready)


def test_js_sdk_3_35_3_signed_sessions_over_https(
    sdk_ready: Path, tls_files: tuple[Path, Path]
) -> None:
    key_file, cert_file = tls_files
    with EmulatorServer(
        application_id=4, auth_key="sdk3-key", auth_secret="sdk3-secret", require_signature=True
    ) as server:
        assert server.emulator.v1_users_api is False
        _run(
            "sdk_check_3.mjs",
            [server.url, "4", "sdk3-key", "sdk3-secret", str(key_file), str(cert_file)],
            sdk_ready,
            env={"NODE_EXTRA_CA_CERTS": str(cert_file)},
        )
