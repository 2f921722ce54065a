"""Seeded whole-cluster simulation runs."""
