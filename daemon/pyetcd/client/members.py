"""The v2 members API (list, leader, add, remove, update) over a KeysClient, as Go's client.MembersAPI.

Theory of operation: every call is one raw request through `KeysClient.request`, so endpoints, failover,
TLS and timeouts are the keys client's. Answers are judged as Go's client judges them:
* a status outside the expected set -> UnexpectedStatus ("unexpected status code 404");
* an expected error status (409 on add, 404/409 on update) -> MembersError carrying etcd's "message";
* a success body that is not the expected JSON -> InvalidMembersJson.
Peer URLs are checked (and sorted) before anything is sent, with the messages of Go's types.NewURLs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .v2 import DEFAULT, ClientError, KeysClient, Timeout

JSON_CONTENT_TYPE = "application/json"
MEMBERS_PATH = "/v2/members"


class UnexpectedStatus(ClientError):
    def __init__(self, status: int) -> None:
        self.status = status
        super().__init__(f"unexpected status code {status}")


class MembersError(ClientError):
    """etcd's {"message": ...} answer to a refused change; str() is the message alone, as in Go."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(message)


class InvalidMembersJson(ClientError):
    pass


class BadPeerURL(ClientError, ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Member:
    id: str  # lowercase hex, as the server prints it
    name: str
    peer_urls: list[str]
    client_urls: list[str]

    @staticmethod
    def from_json(obj: Any) -> Member:
        if not isinstance(obj, dict):
            raise InvalidMembersJson(f"a member must be a JSON object, not {obj!r}")

        def strings(field: str) -> list[str]:
            value = obj.get(field) or []
            return [str(v) for v in value] if isinstance(value, list) else []

        return Member(str(obj.get("id", "")), str(obj.get("name", "")), strings("peerURLs"), strings("clientURLs"))


def check_peer_urls(urls: list[str]) -> list[str]:
    """Go's types.NewURLs: trimmed, validated, sorted. Raises BadPeerURL with Go's wording."""
    if not urls:
        raise BadPeerURL("no valid URLs given")
    out = []
    for raw in urls:
        text = raw.strip()
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        if scheme in ("http", "https"):
            host, sep, port = parts.netloc.rpartition(":")
            if not sep or "]" in port:
                raise BadPeerURL(f'URL address does not have the form "host:port": {text}')
            if parts.path:
                raise BadPeerURL(f"URL must not contain a path: {text}")
        elif scheme not in ("unix", "unixs"):
            raise BadPeerURL(f"URL scheme must be http, https, unix, or unixs: {text}")
        out.append(text)
    return sorted(out)


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidMembersJson(f"invalid JSON in a members answer: {data[:80]!r}") from e


def _refusal(status: int, data: bytes) -> MembersError:
    body = _json(data)
    message = body.get("message", "") if isinstance(body, dict) else ""
    return MembersError(status, str(message))


class MembersClient:
    def __init__(self, client: KeysClient) -> None:
        self.client = client

    def list(self, *, timeout: Timeout = DEFAULT) -> list[Member]:
        status, _, data = self.client.request("GET", MEMBERS_PATH, timeout=timeout)
        if status != 200:
            raise UnexpectedStatus(status)
        body = _json(data)
        members = body.get("members") if isinstance(body, dict) else None
        return [Member.from_json(m) for m in members or []]

    def leader(self, *, timeout: Timeout = DEFAULT) -> Member:
        status, _, data = self.client.request("GET", MEMBERS_PATH + "/leader", timeout=timeout)
        if status != 200:
            raise UnexpectedStatus(status)
        return Member.from_json(_json(data))

    def add(self, peer_url: str, *, timeout: Timeout = DEFAULT) -> Member:
        body = json.dumps({"peerURLs": check_peer_urls([peer_url])}, separators=(",", ":")).encode()
        status, _, data = self.client.request("POST", MEMBERS_PATH, body=body, content_type=JSON_CONTENT_TYPE,
                                              timeout=timeout)
        if status == 409:
            raise _refusal(status, data)
        if status != 201:
            raise UnexpectedStatus(status)
        return Member.from_json(_json(data))

    def update(self, member_id: str, peer_urls: list[str], *, timeout: Timeout = DEFAULT) -> None:
        body = json.dumps({"peerURLs": check_peer_urls(peer_urls)}, separators=(",", ":")).encode()
        status, _, data = self.client.request("PUT", f"{MEMBERS_PATH}/{member_id}", body=body,
                                              content_type=JSON_CONTENT_TYPE, timeout=timeout)
        if status in (404, 409):
            raise _refusal(status, data)
        if status != 204:
            raise UnexpectedStatus(status)

    def remove(self, member_id: str, *, timeout: Timeout = DEFAULT) -> None:
        """410 Gone (removed before) counts as done, as in Go's client."""
        status, _, _ = self.client.request("DELETE", f"{MEMBERS_PATH}/{member_id}", content_type=None,
                                           timeout=timeout)
        if status not in (204, 410):
            raise UnexpectedStatus(status)
