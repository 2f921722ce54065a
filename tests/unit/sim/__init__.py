"""Unit tests of the simulator parts (linearizability checker, sim disk)."""
