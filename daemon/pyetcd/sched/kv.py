"""The v2 keys client as the scheduler and the agents use it.

KeysClient already fails over on refused connections and 5xx answers, but a request that times out
ends there, and the client keeps starting at the endpoint that answered last. A member that accepts
connections but cannot serve (no leader) would then eat every request. Here a timeout also moves the
starting point to the next endpoint, so the next call tries another member.

Every call takes an explicit timeout: the agent's loop must never block past its fencing deadline.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..client.connection import ConnectionOptions, connect
from ..client.v2 import EtcdError, RequestTimeout, Response

KEY_NOT_FOUND = 100
COMPARE_FAILED = 101
NODE_EXISTS = 105
EVENT_INDEX_CLEARED = 401
CONFLICTS = (KEY_NOT_FOUND, COMPARE_FAILED, NODE_EXISTS)  # a conditional write lost a race


def is_code(err: BaseException, *codes: int) -> bool:
    return isinstance(err, EtcdError) and err.error_code in codes


class KV:
    def __init__(self, options: ConnectionOptions) -> None:
        self._options = options
        self._ssl_context = options.ssl_context()
        self.timeout = options.request_timeout_s
        self._client = connect(options, ssl_context=self._ssl_context)

    @property
    def endpoints(self) -> list[str]:
        return list(self._options.endpoints)

    def _rotate(self) -> None:
        eps = self._options.endpoints
        self._options = replace(self._options, endpoints=eps[1:] + eps[:1])
        self._client = connect(self._options, ssl_context=self._ssl_context)

    def _run(self, method: str, *args: Any, **kwargs: Any) -> Response:
        try:
            return getattr(self._client, method)(*args, **kwargs)
        except RequestTimeout:
            self._rotate()
            raise

    def read(self, key: str, *, recursive: bool = False, quorum: bool = True,
             timeout: float | None = None) -> Response:
        return self._run("get", key, recursive=recursive, sorted=True, quorum=quorum,
                         timeout=self.timeout if timeout is None else timeout)

    def watch(self, key: str, wait_index: int, timeout: float, recursive: bool = True) -> Response:
        """The first event under `key` at `wait_index` or later; RequestTimeout if none comes in time.
        A quiet watch timing out is normal, so it does not rotate endpoints."""
        return self._client.get(key, wait=True, wait_index=wait_index, recursive=recursive, timeout=timeout)

    def set(self, key: str, value: str = "", *, timeout: float | None = None, **kwargs: Any) -> Response:
        return self._run("set", key, value, timeout=self.timeout if timeout is None else timeout, **kwargs)

    def create(self, key: str, value: str, *, ttl: int | None = None, timeout: float | None = None) -> Response:
        return self._run("create", key, value, ttl=ttl, timeout=self.timeout if timeout is None else timeout)

    def delete(self, key: str, *, timeout: float | None = None, **kwargs: Any) -> Response:
        return self._run("delete", key, timeout=self.timeout if timeout is None else timeout, **kwargs)


def modified_index(resp: Response) -> int:
    return int(resp.node.get("modifiedIndex", 0))


def leaves(node: dict[str, Any]) -> list[dict[str, Any]]:
    """Every non-directory node of a recursive GET answer."""
    out: list[dict[str, Any]] = []
    stack = [node]
    while stack:
        n = stack.pop()
        if n.get("dir"):
            stack.extend(n.get("nodes") or [])
        elif "key" in n:
            out.append(n)
    return out
