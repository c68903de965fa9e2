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
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/site-ca.pem")
    transport, _ = make_transport()
    settings = transport.session.merge_environment_settings(f"{API}/users/1", {}, None, None, None)
    assert settings["proxies"]["https"] == "http://proxy.test:3128"
    assert settings["verify"] == "/etc/ssl/certs/site-ca.pem"
