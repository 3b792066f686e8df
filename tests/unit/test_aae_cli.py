"""`spinekv admin aae-status`'s table, rendered from nodes' GET /admin/aae answers."""

from __future__ import annotations

import pytest
from rich.console import Console

from spinekv.cli.aae import age, status_table

NOW = 1_800_000_000.0


def tree(partition: int, state: str, **more) -> dict:
    return {
        "partition": partition,
        "n_val": 3,
        "source": partition,
        "state": state,
        "keys": 10,
        "root": "0badcafe",
        "last_rebuild": None,
        "last_exchange": None,
        "repairs_last_hour": 0,
        **more,
    }


def rows(answers: dict) -> list[list[str]]:
    out = Console(width=200, record=True, file=None)
    with out.capture() as captured:
        out.print(status_table(answers, NOW))
    return [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in captured.get().splitlines()
        if line.startswith("│")
    ]


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (None, "never"),
        (0, "0s ago"),
        (59.9, "59s ago"),
        (180, "3m ago"),
        (7300, "2h ago"),
        (3 * 86_400 + 5, "3d ago"),
        (-4, "0s ago"),
    ],
)
def test_age_is_the_largest_whole_unit(seconds, shown):
    assert age(seconds) == shown


def test_one_row_per_node_and_tree_with_exchange_results_and_unreachable_nodes():
    answers = {
        "n1": {
            "node": "n1",
            "enabled": True,
            "segments": 65536,
            "trees": [
                tree(
                    0,
                    "built",
                    last_rebuild=NOW - 180,
                    last_exchange={
                        "when": NOW - 12,
                        "peer": "n2",
                        "outcome": "in_sync",
                        "repaired": 0,
                    },
                ),
                tree(
                    4,
                    "loaded",
                    last_rebuild=NOW - 2 * 86_400,
                    last_exchange={
                        "when": NOW - 120,
                        "peer": "n3",
                        "outcome": "repair",
                        "repaired": 7,
                    },
                    repairs_last_hour=9,
                ),
                tree(8, "rebuilding"),
            ],
        },
        "n2": "n2 (http://127.0.0.1:1) did not answer: connection refused",
        "n3": {"node": "n3", "enabled": False, "segments": None, "trees": []},
    }
    assert rows(answers) == [
        ["n1", "0", "3", "built", "3m ago", "12s ago with n2: in sync", "0"],
        ["n1", "4", "3", "loaded", "2d ago", "2m ago with n3: 7 repaired", "9"],
        ["n1", "8", "3", "rebuilding", "never", "never", "0"],
        ["n2", "n2 (http://127.0.0.1:1) did not answer: connection refused", "", "", "", "", ""],
        ["n3", "anti-entropy off", "", "", "", "", ""],
    ]
