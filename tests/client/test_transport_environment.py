"""What the transport takes from the process environment, and what it must not."""

from __future__ import annotations

import responses
from cube_doubles import API, USER, make_transport


@responses.activate
def test_netrc_credentials_are_never_sent_to_connectycube(tmp_path, monkeypatch):
    # ConnectyCube authenticates by its own headers. requests would otherwise look the host up
    # in ~/.netrc (two file checks per request) and send what it finds as Basic credentials.
    netrc = tmp_path / "netrc"
    netrc.write_text("machine cc.test login someone password their-password\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    responses.get(f"{API}/users/1", json={"user": USER})
    transport, _ = make_transport()
    transport.request("GET", "users/1")
    assert "Authorization" not in responses.calls[0].request.headers


@responses.activate
def test_the_proxy_and_ca_bundle_variables_still_apply(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.test:3128")
    monkeypatch.setenv("NO_PROXY", "storage.test")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/site-ca.pem")
    responses.get(f"{API}/users/1", json={"user": USER})
    responses.get("https://storage.test/blob", body=b"x")
    transport, _ = make_transport()
    transport.request("GET", "users/1")
    transport.request("GET", "https://storage.test/blob")
    to_api, to_storage = (call.request.req_kwargs for call in responses.calls)
    assert to_api["proxies"]["https"] == "http://proxy.test:3128"
    assert to_api["verify"] == "/etc/ssl/certs/site-ca.pem"
    assert "https" not in to_storage["proxies"]  # NO_PROXY still holds
    assert to_storage["verify"] == "/etc/ssl/certs/site-ca.pem"


@responses.activate
def test_the_environment_is_read_once_per_origin_not_per_request(monkeypatch):
    calls = []
    import django_connectycube.client.environment as environment

    real = environment.get_environ_proxies
    monkeypatch.setattr(
        environment, "get_environ_proxies", lambda url: calls.append(url) or real(url)
    )
    responses.get(f"{API}/users/1", json={"user": USER})
    transport, _ = make_transport()
    for _ in range(5):
        transport.request("GET", "users/1")
    assert len(calls) == 1
