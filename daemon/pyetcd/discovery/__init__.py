"""Discovery-token bootstrap: the token service and the discovering member (spec: discovery.md)."""
