"""Chaos suite: real nodes under kills, pauses and nftables cuts; long runs: tests.chaos.run."""
