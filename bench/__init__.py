"""Benchmarks. `make bench` runs them all; each prints its figures and the ratio to a
baseline measured in the same run."""
