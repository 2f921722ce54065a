"""Blocking etcd v2 clients built on http.client (used before the event loop starts, and by tools)."""

from pyetcd.client.connection import ConnectionOptions, connect
from pyetcd.client.v2 import (
    ClientError,
    ClusterError,
    EtcdError,
    InvalidResponse,
    KeysClient,
    RequestTimeout,
    Response,
)

__all__ = ["ClientError", "ClusterError", "ConnectionOptions", "EtcdError", "InvalidResponse", "KeysClient",
           "RequestTimeout", "Response", "connect"]
