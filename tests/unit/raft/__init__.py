"""Raft core unit tests, named after the rules of the Raft paper (Ongaro & Ousterhout, 2014)."""
