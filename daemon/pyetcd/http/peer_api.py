"""The peer HTTP API (pure): `POST /raft` carries a batch of Raft messages; `GET /members` and
`GET /version` let a joining member (or etcd's v2 proxy) learn the cluster; /members answers in etcd's
form (member ids as JSON numbers). A request from another cluster (its X-Etcd-Cluster-ID differs) gets
412, from a removed member 410, as etcd's peer handler answers.
"""

from __future__ import annotations

from .. import ETCD_CLUSTER_VERSION, ETCD_SERVER_VERSION
from ..raft.types import Message
from ..store.event import dump_json
from .client_api import JSON_CT, TEXT_CT, Headers, Reply, find_header
from .status import ServerView
from .wire import WireError, decode_batch

PEER_BODY_BYTES_MAX = 512 * 1024 * 1024  # a snapshot travels in one request


class PeerApi:
    def __init__(self, view: ServerView) -> None:
        self.view = view

    def handle(self, method: str, target: bytes, headers: Headers, body: bytes) -> tuple[Reply, list[Message]]:
        cid = (b"X-Etcd-Cluster-Id", self.view.cluster_id_bytes)
        path = target.split(b"?", 1)[0]
        if path == b"/raft":
            if method != "POST":
                return Reply(405, [TEXT_CT, (b"Allow", b"POST")], b"Method Not Allowed\n"), []
            return self._raft(headers, body, cid)
        if path == b"/members":
            if method != "GET":
                return Reply(405, [(b"Allow", b"GET"), TEXT_CT], b"Method Not Allowed\n"), []
            # etcd's wire form: ids as JSON numbers, not the hex strings of /v2/members (Member.to_peer_json_obj)
            members = [m.to_peer_json_obj() for m in self.view.members.ordered()]
            return Reply(200, [JSON_CT, cid], dump_json(members)), []
        if path == b"/version" and method == "GET":
            body_obj = {"etcdserver": ETCD_SERVER_VERSION, "etcdcluster": ETCD_CLUSTER_VERSION}
            return Reply(200, [JSON_CT], dump_json(body_obj)[:-1]), []
        return Reply(404, [TEXT_CT], b"404 page not found\n"), []

    def _raft(self, headers: Headers, body: bytes, cid: tuple[bytes, bytes]) -> tuple[Reply, list[Message]]:
        theirs = find_header(headers, b"x-etcd-cluster-id")
        if theirs is not None and theirs.lower() != self.view.cluster_id_bytes:
            return Reply(412, [TEXT_CT, cid], b"cluster ID mismatch\n"), []
        sender = find_header(headers, b"x-server-from")
        try:
            sender_id = int(sender, 16) if sender else 0
        except ValueError:
            sender_id = 0
        if sender_id in self.view.members.removed:
            return Reply(410, [TEXT_CT, cid], b"the member has been permanently removed from the cluster\n"), []
        if len(body) > PEER_BODY_BYTES_MAX:
            return Reply(413, [TEXT_CT, cid], b"request too large\n"), []
        try:
            messages = decode_batch(body)
        except WireError as e:
            return Reply(400, [TEXT_CT, cid], f"bad raft message batch: {e}\n".encode()), []
        mine = [m for m in messages if m.to == self.view.self_id]
        return Reply(204, [cid], b""), mine
