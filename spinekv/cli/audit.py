"""`spinekv admin audit verify`: walk every node's audit chain and say what is wrong with it."""

from __future__ import annotations

import urllib.parse

import click
from rich.table import Table

from ..config import ClusterConfig
from .admin import NodeError, _call, _ctx, admin
from .common import console


@admin.group("audit")
def audit() -> None:
    """The tamper-evident audit trail of record reads."""


def _chain(config: ClusterConfig, node: str) -> tuple[dict, str]:
    """`node`'s chain report and a note: from the node itself (held against its head), else
    from the first other node that answers (a deleted tail cannot be seen then)."""
    try:
        return _call(config, node, "GET", "/admin/audit/verify"), ""
    except NodeError as own:
        query = "/admin/audit/verify?node=" + urllib.parse.quote(node, safe="")
        for other in config.node_names():
            if other == node:
                continue
            try:
                return _call(config, other, "GET", query), f"head not checked: {own}"
            except NodeError:
                continue
        raise NodeError(f"no node could walk the audit chain of {node}: {own}") from None


def _seqs(report: dict) -> str:
    if report["first_seq"] is None:
        return "-"
    return f"{report['first_seq']}..{report['last_seq']}"


def _problems(report: dict) -> list[str]:
    lines = [f"missing (deleted) seq {a}..{b}" for a, b in report["gaps"]]
    lines += [f"edited seq {seq}" for seq in report["edits"]]
    lines += [f"forged record {key}" for key in report["forgeries"]]
    return lines


def _table(reports: dict[str, dict]) -> Table:
    table = Table(title="audit chains")
    for column in ("node", "events", "seqs", "head", "gaps", "edits", "forgeries", "verdict"):
        table.add_column(column, justify="right" if column in ("events", "head") else "left")
    for node, report in reports.items():
        head = report["head_seq"]
        table.add_row(
            node,
            str(report["events"]),
            _seqs(report),
            "?" if head is None else str(head),
            str(sum(b - a + 1 for a, b in report["gaps"])),
            str(len(report["edits"])),
            str(len(report["forgeries"])),
            "[green]intact[/green]" if report["ok"] else "[red]TAMPERED[/red]",
        )
    return table


@audit.command("verify")
@click.pass_context
def verify(ctx: click.Context) -> None:
    """Walk each node's audit chain: events, first/last seq, and every gap (a deleted record),
    edit and forgery. Exits 1 when any chain is not intact."""
    config, _ = _ctx(ctx)
    reports: dict[str, dict] = {}
    notes: dict[str, str] = {}
    for node in config.node_names():
        report, note = _chain(config, node)
        if note and not report["events"]:
            continue  # not running and never wrote an event (a spare): nothing to show
        reports[node] = report
        if note:
            notes[node] = note
    console.print(_table(reports))
    for node, report in reports.items():
        for line in ([notes[node]] if node in notes else []) + _problems(report):
            console.print(f"{node}: {line}")
    if not all(report["ok"] for report in reports.values()):
        raise SystemExit(1)
