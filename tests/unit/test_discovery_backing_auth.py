"""The token service's backing credentials: settings (flags, DISC_* variables) and the Authorization every
backing request carries, whatever the proxied client sent."""

from __future__ import annotations

import pytest
from pyetcd.discovery.backing import Backing, backing_auth
from pyetcd.discovery.service_settings import ConfigError, parse_settings

from tests.support.scripted_http import ScriptedHttp, json_reply


def test_credentials_from_flags_and_variables() -> None:
    s = parse_settings(["--etcd-username", "disc", "--etcd-password", "p w"], {"DISC_ETCD_PASSWORD": "env"})
    assert (s.etcd_username, s.etcd_password, backing_auth(s)) == ("disc", "p w", "Basic ZGlzYzpwIHc=")
    s = parse_settings([], {"DISC_ETCD_USERNAME": "disc", "DISC_ETCD_PASSWORD": "env"})
    assert (s.etcd_username, s.etcd_password) == ("disc", "env")
    assert backing_auth(parse_settings([], {})) is None
    with pytest.raises(ConfigError, match="--etcd-password needs --etcd-username"):
        parse_settings([], {"DISC_ETCD_PASSWORD": "x"})


@pytest.mark.parametrize("auth", [None, "Basic ZGlzYzpw"])
def test_every_backing_request_carries_the_services_credentials(auth: str | None) -> None:
    with ScriptedHttp(lambda seen: json_reply(201, b"{}")) as srv:
        backing = Backing([srv.url], None, 5.0, auth)
        backing.call("PUT", "/v2/keys/_etcd/registry/t/_config/size?prevExist=false", {"value": "3"})
        conn = backing.connection(srv.url, 5.0)  # the token proxy's way: headers one by one
        conn.putrequest("GET", "/v2/keys/_etcd/registry/t", skip_accept_encoding=True)
        conn.putheader("authorization", "Basic Y2xpZW50Og==")  # the client's own
        conn.putheader("X-Other", "kept")
        conn.endheaders()
        conn.getresponse().read()
        conn.close()
    first, proxied = srv.seen
    assert first.headers.get("authorization") == auth
    assert proxied.headers.get("authorization") == (auth or "Basic Y2xpZW50Og==")
    assert proxied.headers["x-other"] == "kept"
