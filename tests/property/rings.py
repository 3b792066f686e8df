"""Hypothesis strategies and claim's documented guarantee, shared by the ring and claim tests."""

from __future__ import annotations

from math import ceil

from hypothesis import strategies as st

n_vals = st.integers(1, 5)
# Random names, so nothing can lean on the order nodes join in or on "n00" < "n01".
node_names = st.text(alphabet="abcdefghijklmnop", min_size=1, max_size=3)


def members(min_size: int = 1, max_size: int = 24) -> st.SearchStrategy[list[str]]:
    return st.lists(node_names, min_size=min_size, max_size=max_size, unique=True)


def distinct_is_possible(ring_size: int, nodes: int, n_val: int) -> bool:
    """claim's documented condition for every n_val window to have n_val distinct owners."""
    return nodes >= n_val and ceil(ring_size / nodes) * n_val <= ring_size
