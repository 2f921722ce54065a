"""Test support shipped with the package (as etcd ships rafttest/): the deterministic simulator."""
