"""etcd v2 error codes, their exact messages and HTTP statuses.

A V2Error is raised by the store and by request parsing; the HTTP layer renders it as
{"errorCode","message","cause","index"} with the status that depends only on the code.
"""

from __future__ import annotations

KEY_NOT_FOUND = 100
TEST_FAILED = 101
NOT_FILE = 102
NOT_DIR = 104
NODE_EXIST = 105
ROOT_READ_ONLY = 107
DIR_NOT_EMPTY = 108
UNAUTHORIZED = 110
PREV_VALUE_REQUIRED = 201
TTL_NAN = 202
INDEX_NAN = 203
INVALID_FIELD = 209
INVALID_FORM = 210
REFRESH_VALUE = 211
REFRESH_TTL_REQUIRED = 212
RAFT_INTERNAL = 300
LEADER_ELECT = 301
WATCHER_CLEARED = 400
EVENT_INDEX_CLEARED = 401

MESSAGES: dict[int, str] = {
    KEY_NOT_FOUND: "Key not found",
    TEST_FAILED: "Compare failed",
    NOT_FILE: "Not a file",
    NOT_DIR: "Not a directory",
    NODE_EXIST: "Key already exists",
    ROOT_READ_ONLY: "Root is read only",
    DIR_NOT_EMPTY: "Directory not empty",
    UNAUTHORIZED: "The request requires user authentication",
    PREV_VALUE_REQUIRED: "PrevValue is Required in POST form",
    TTL_NAN: "The given TTL in POST form is not a number",
    INDEX_NAN: "The given index in POST form is not a number",
    INVALID_FIELD: "Invalid field",
    INVALID_FORM: "Invalid POST form",
    REFRESH_VALUE: "Value provided on refresh",
    REFRESH_TTL_REQUIRED: "A TTL must be provided on refresh",
    RAFT_INTERNAL: "Raft Internal Error",
    LEADER_ELECT: "During Leader Election",
    WATCHER_CLEARED: "watcher is cleared due to etcd recovery",
    EVENT_INDEX_CLEARED: "The event in requested index is outdated and cleared",
}

_STATUS: dict[int, int] = {
    KEY_NOT_FOUND: 404,
    TEST_FAILED: 412,
    NOT_FILE: 403,
    NODE_EXIST: 412,
    DIR_NOT_EMPTY: 403,
    UNAUTHORIZED: 401,
    RAFT_INTERNAL: 500,
    LEADER_ELECT: 500,
}


class V2Error(Exception):
    """An etcd v2 API error; `index` is the store index at the time (0 for parse errors)."""

    def __init__(self, code: int, cause: str = "", index: int = 0) -> None:
        super().__init__(code, cause, index)
        self.code = code
        self.cause = cause
        self.index = index

    @property
    def message(self) -> str:
        return MESSAGES.get(self.code, "")

    @property
    def http_status(self) -> int:
        return _STATUS.get(self.code, 400)

    def as_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"errorCode": self.code, "message": self.message}
        if self.cause:
            body["cause"] = self.cause
        body["index"] = self.index
        return body
