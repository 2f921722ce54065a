"""Smoke: elections and replication in 3- and 5-member clusters."""

from __future__ import annotations

import pytest

from tests.cluster.conftest import Cluster, MakeCluster, get, put
from tests.support.kit import wait_for


@pytest.mark.parametrize("n", [3, 5])
def test_elects_one_leader(make_cluster: MakeCluster, n: int) -> None:
    c: Cluster = make_cluster(n)
    lead = c.wait_leader()
    assert c.leaders() == [lead]
    for m in c.members:
        st = c.stats_self(m, timeout=5.0)  # the polling default (1 s) is too tight on a loaded machine
        assert st is not None
        assert st["leaderInfo"]["leader"] == lead.id_hex
        assert st["state"] == ("StateLeader" if m is lead else "StateFollower")
    # /v2/members/leader agrees everywhere
    from tests.integration._http import request
    for m in c.members:
        r = request(m.client_port, "GET", "/v2/members/leader")
        assert r.status == 200 and r.json()["id"] == lead.id_hex


@pytest.mark.parametrize("n", [3, 5])
def test_writes_on_any_member_readable_everywhere(make_cluster: MakeCluster, n: int) -> None:
    c = make_cluster(n)
    for i, m in enumerate(c.members):
        r = put(m, f"/k{i}", f"from-{m.name}")
        assert r.status == 201, (r.status, r.body)
    for m in c.members:
        for i, w in enumerate(c.members):
            assert get(m, f"/k{i}", quorum=True).json()["node"]["value"] == f"from-{w.name}"
        assert wait_for(lambda m=m: all(get(m, f"/k{i}").status == 200 for i in range(n)), 5)
