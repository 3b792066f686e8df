"""`spinekv admin aae-status`: every node's anti-entropy trees, rebuilds and exchanges."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from ..config import ClusterConfig
from .admin import NodeError, _call, _contact, _ctx, admin
from .common import console, known_names

# Seconds each node gets to answer GET /admin/aae.
ASK_TIMEOUT = 5.0
STATE_STYLE = {"built": "green", "loaded": "cyan", "rebuilding": "yellow"}


def age(seconds_ago: float | None) -> str:
    """'never', or how long ago in the largest whole unit: '12s ago', '3m ago', '2d ago'."""
    if seconds_ago is None:
        return "never"
    seconds = max(0, int(seconds_ago))
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def result(exchange: dict) -> str:
    """An exchange's outcome in words: 'in sync', 'n repaired', or 'unconfirmed'."""
    if exchange["outcome"] == "repair":
        return f"{exchange['repaired']} repaired"
    return exchange["outcome"].replace("_", " ")


def status_table(answers: dict[str, dict | str], now: float) -> Table:
    """One row per node and tree from each node's GET /admin/aae answer; a node that gave
    none (its answer is why, as a string) or runs without AAE is one row saying so."""
    table = Table(title="Anti-entropy")
    for column in ("node", "partition", "n_val", "state", "last rebuild", "last exchange"):
        table.add_column(column)
    table.add_column("repairs (1h)", justify="right")
    for node, answer in answers.items():
        if isinstance(answer, str):
            table.add_row(node, Text(answer, style="bold red"))
            continue
        if not answer["enabled"]:
            table.add_row(node, Text("anti-entropy off", style="dim"))
            continue
        if not answer["trees"]:
            table.add_row(node, Text("no trees (holds no primary)", style="dim"))
        for tree in answer["trees"]:
            rebuilt, last = tree["last_rebuild"], tree["last_exchange"]
            exchanged = "never"
            if last is not None:
                exchanged = f"{age(now - last['when'])} with {last['peer']}: {result(last)}"
            table.add_row(
                node,
                str(tree["partition"]),
                str(tree["n_val"]),
                Text(tree["state"], style=STATE_STYLE.get(tree["state"], "")),
                age(None if rebuilt is None else now - rebuilt),
                exchanged,
                str(tree["repairs_last_hour"]),
            )
    return table


def _members(config: ClusterConfig) -> list[str]:
    """The ring's members as the first node that answers sees them; else the file's nodes."""
    try:
        contact = _contact(config, None)
        ring = _call(config, contact, "GET", "/admin/ring", ASK_TIMEOUT)
    except NodeError:
        return config.node_names()
    return [m["node"] for m in ring["members"]]


def _ask(config: ClusterConfig, node: str) -> dict | str:
    try:
        return _call(config, node, "GET", "/admin/aae", ASK_TIMEOUT)
    except NodeError as exc:
        return exc.message


@admin.command("aae-status")
@click.option("--node", "only", default=None, help="Only this node (default: every member).")
@click.option("--json", "as_json", is_flag=True, help="Print each node's answer as JSON.")
@click.pass_context
def aae_status(ctx: click.Context, only: str | None, as_json: bool) -> None:
    """Per node and tree: state, last rebuild, last exchange (with whom, result), recent repairs."""
    config, chosen = _ctx(ctx)
    only = only or chosen
    nodes = known_names(config, [only]) if only is not None else _members(config)
    with ThreadPoolExecutor(max_workers=min(8, len(nodes) or 1)) as pool:
        found = dict(zip(nodes, pool.map(lambda n: _ask(config, n), nodes), strict=True))
    if as_json:
        answers: dict[str, Any] = {
            n: {"error": a} if isinstance(a, str) else a for n, a in found.items()
        }
        click.echo(json.dumps(answers, indent=2))
        return
    console.print(status_table(found, time.time()))
