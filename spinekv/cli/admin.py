"""`spinekv admin`: stage, plan and commit membership changes; member, ring and transfer views;
bucket types."""

from __future__ import annotations

import contextlib
import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import Any

import click
from rich.console import Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from ..config import ClusterConfig
from . import nodehttp, processes
from .common import cluster_config, config_name, console, known_names

STATUS_STYLE = {"valid": "green", "joining": "cyan", "leaving": "yellow", "exiting": "magenta"}


class NodeError(click.ClickException):
    """A node refused or could not answer; the message says which and why."""


@contextlib.contextmanager
def _answer(
    config: ClusterConfig, node: str, method: str, path: str, timeout: float
) -> Iterator[http.client.HTTPResponse]:
    """The open answer of a request with no body; NodeError if the node refused or was
    silent, whether at once or while the answer was being read."""
    url = config.http_url(node) + path
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with nodehttp.urlopen(config, req, timeout) as resp:
            yield resp
    except urllib.error.HTTPError as err:
        try:
            reason = json.load(err).get("error", "")
        except ValueError:
            reason = ""
        raise NodeError(f"{node} refused: {reason or err}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise NodeError(f"{node} ({url}) did not answer: {exc}") from None


def _call(config: ClusterConfig, node: str, method: str, path: str, timeout: float = 10.0) -> Any:
    with _answer(config, node, method, path, timeout) as resp:
        return json.load(resp)


def _send(config: ClusterConfig, node: str, method: str, path: str, body: Any) -> tuple[int, Any]:
    """(status, JSON answer) of a request with a JSON body; a refusal is an answer too."""
    url = config.http_url(node) + path
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        url,
        method=method,
        data=data,
        headers={"Content-Type": "application/json"},
    )
    try:
        with nodehttp.urlopen(config, req, 10.0) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as err:
        try:
            return err.code, json.load(err)
        except ValueError:
            raise NodeError(f"{node} refused: {err}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise NodeError(f"{node} ({url}) did not answer: {exc}") from None


def _contact(config: ClusterConfig, chosen: str | None, avoid: str | None = None) -> str:
    """The node to ask: the one chosen with --node, else the first in the file that answers."""
    if chosen is not None:
        return known_names(config, [chosen])[0]
    for name in config.node_names():
        if name != avoid and processes.ping(config, name, 0.5):
            return name
    raise NodeError(f"no node of {config_name(config)} answers; start them with `spinekv up`")


def _statuses(config: ClusterConfig) -> dict[str, dict]:
    """/admin/status of every node that answers."""
    found = {n: processes.fetch_json(config, n, "/admin/status", 2.0) for n in config.node_names()}
    return {name: status for name, status in found.items() if status is not None}


@click.group()
@click.option("--node", "node", default=None, help="The node to ask (default: first that answers).")
@click.pass_context
def admin(ctx: click.Context, node: str | None) -> None:
    """Membership changes and cluster views, as riak-admin offers them."""
    ctx.meta["spinekv.admin_node"] = node


def _ctx(ctx: click.Context) -> tuple[ClusterConfig, str | None]:
    # Loaded here, not in the group: a --config after the subcommand is read after the group ran.
    return cluster_config(ctx), ctx.meta["spinekv.admin_node"]


# ---------------------------------------------------------------- staging


def _stage(ctx: click.Context, action: str, name: str, note: str = "") -> None:
    """Stage `action` of NAME through a node other than NAME itself."""
    config, chosen = _ctx(ctx)
    if name not in config.node_names():
        raise click.ClickException(
            f"{name} is not a node in {config_name(config)} "
            f"(it has {', '.join(config.node_names())})"
        )
    contact = _contact(config, chosen, avoid=name)
    _call(config, contact, "POST", f"/admin/stage?action={action}&node={name}")
    what = "force-remove" if action == "remove" else action
    sentences = [
        f"Success: staged {what} of {name} (via {contact}).",
        note,
        "Run `spinekv admin plan`.",
    ]
    console.print(" ".join(filter(None, sentences)))


@admin.command()
@click.argument("name")
@click.pass_context
def join(ctx: click.Context, name: str) -> None:
    """Stage NAME (running, not yet a member) to join the cluster."""
    _stage(ctx, "join", name)


@admin.command()
@click.argument("name")
@click.pass_context
def leave(ctx: click.Context, name: str) -> None:
    """Stage member NAME to leave: it hands off everything it owns, then stops."""
    _stage(ctx, "leave", name)


@admin.command("force-remove")
@click.argument("name")
@click.pass_context
def force_remove(ctx: click.Context, name: str) -> None:
    """Stage removing member NAME that is gone for good: nothing is handed off from it."""
    _stage(ctx, "remove", name, "Its replicas are rebuilt from the others.")


@admin.command()
@click.pass_context
def clear(ctx: click.Context) -> None:
    """Drop every staged change."""
    config, chosen = _ctx(ctx)
    _call(config, _contact(config, chosen), "POST", "/admin/clear")
    console.print("Cleared staged changes.")


@admin.command()
@click.pass_context
def plan(ctx: click.Context) -> None:
    """Show what committing the staged changes will do."""
    config, chosen = _ctx(ctx)
    contact = _contact(config, chosen)
    result = _call(config, contact, "GET", "/admin/plan")
    staged = Table(title="Staged changes")
    staged.add_column("action")
    staged.add_column("node")
    for node in result["joins"]:
        staged.add_row("join", node)
    for node in result["leaves"]:
        staged.add_row("leave", node)
    for node in result["removes"]:
        staged.add_row("force-remove", node)
    console.print(staged)
    members = Table(title="Membership after the transition")
    for column in ("node", "status after", "partitions now", "partitions after"):
        members.add_column(column)
    for node, (now, after) in result["shares"].items():
        status = "leaving" if node in result["leaves"] else "valid"
        if node in result["removes"]:
            status = "removed"
        members.add_row(node, status, str(now), str(after))
    console.print(members)
    pairs = Counter((m["source"], m["target"]) for m in result["moves"])
    console.print(f"Transfers resulting from cluster changes: {len(result['moves'])}")
    for (source, target), count in sorted(pairs.items()):
        console.print(f"  {count} transfers from {source} to {target}")
    for warning in result["warnings"]:
        console.print(f"[yellow]WARNING: {warning}[/yellow]")
    console.print("Run `spinekv admin commit` to apply, or `spinekv admin clear` to drop.")


@admin.command()
@click.pass_context
def commit(ctx: click.Context) -> None:
    """Apply the staged changes: ownership handoff starts at once."""
    config, chosen = _ctx(ctx)
    contact = _contact(config, chosen)
    result = _call(config, contact, "POST", "/admin/commit")
    console.print(
        f"Cluster changes committed (ring epoch {result['epoch']}); "
        f"{result['moves']} partition transfers to make. Watch: `spinekv admin transfers --watch`."
    )


# ---------------------------------------------------------------- views


@admin.command("member-status")
@click.pass_context
def member_status(ctx: click.Context) -> None:
    """Members, their status, and their share of the ring now and once transfers finish."""
    config, chosen = _ctx(ctx)
    contact = _contact(config, chosen)
    ring = _call(config, contact, "GET", "/admin/ring")
    size = ring["ring_size"]
    table = Table(title=f"Membership (ring epoch {ring['epoch']}, as {contact} sees it)")
    for column in ("node", "status", "reachable", "ring", "pending"):
        table.add_column(column)
    counts: Counter[str] = Counter()
    for m in ring["members"]:
        counts[m["status"]] += 1
        pending = m["partitions_after"] if m["partitions_after"] != m["partitions"] else None
        table.add_row(
            m["node"],
            Text(m["status"], style=STATUS_STYLE.get(m["status"], "")),
            Text("up", style="green") if m["up"] else Text("down", style="bold red"),
            f"{100 * m['partitions'] / size:5.1f}%",
            "--" if pending is None else f"{100 * pending / size:5.1f}%",
        )
    console.print(table)
    summary = ", ".join(f"{s}: {counts[s]}" for s in STATUS_STYLE)
    console.print(f"{summary}, down: {sum(not m['up'] for m in ring['members'])}")


@admin.command("ring-status")
@click.pass_context
def ring_status(ctx: click.Context) -> None:
    """Whether nodes agree on the ring, pending ownership changes, unreachable nodes."""
    config, chosen = _ctx(ctx)
    contact = _contact(config, chosen)
    ring = _call(config, contact, "GET", "/admin/ring")
    statuses = _statuses(config)
    digests = {name: st["ring"]["digest"] for name, st in statuses.items()}
    agree = sorted(n for n, d in digests.items() if d == ring["digest"])
    differ = sorted(n for n, d in digests.items() if d != ring["digest"])
    ready = not ring["pending"] and not differ
    console.print(
        f"Ring epoch {ring['epoch']} on {contact}; ring ready: "
        + ("[green]true[/green]" if ready else "[yellow]false[/yellow]")
    )
    console.print(f"Nodes agreeing: {', '.join(agree) or '-'}")
    if differ:
        console.print(f"[yellow]Nodes not yet agreeing: {', '.join(differ)}[/yellow]")
    table = Table(title="Pending ownership changes")
    for column in ("from", "to", "partitions"):
        table.add_column(column)
    pairs = Counter((m["source"], m["target"]) for m in ring["pending"])
    for (source, target), count in sorted(pairs.items()):
        table.add_row(source, target, str(count))
    console.print(table if pairs else "Pending ownership changes: none")
    if ring["staged"]:
        staged = ", ".join(f"{a} {n}" for n, a in sorted(ring["staged"].items()))
        console.print(f"Staged, not committed: {staged}")
    unreachable = sorted(set(ring["unreachable"]) & {m["node"] for m in ring["members"]})
    console.print(
        "Unreachable nodes: " + (f"[red]{', '.join(unreachable)}[/red]" if unreachable else "none")
    )


def _transfer_rows(statuses: dict[str, dict]) -> tuple[list[dict], int]:
    """Active transfers across the cluster, and how many more wait to start."""
    active, waiting = [], 0
    for name, st in statuses.items():
        running = {t["partition"] for t in st["handoff"]["active"]}
        waiting += sum(p["partition"] not in running for p in st["handoff"]["pending"])
        for t in st["handoff"]["active"]:
            active.append({"source": name, **t})
    return active, waiting


def _transfers_table(statuses: dict[str, dict]) -> Table:
    active, waiting = _transfer_rows(statuses)
    table = Table(title=f"Transfers in flight: {len(active)}; waiting to start: {waiting}")
    for column in ("from", "to", "partition", "kind", "objects", "MiB", "objects/s"):
        table.add_column(column)
    for t in active:
        elapsed = max(t["elapsed"], 1e-3)
        table.add_row(
            t["source"],
            t["target"],
            str(t["partition"]),
            t["kind"],
            f"{t['objects']}/{t['total']}",
            f"{t['bytes'] / 2**20:.1f}",
            f"{t['objects'] / elapsed:,.0f}",
        )
    return table


@admin.command()
@click.option("--watch", is_flag=True, help="Keep showing progress until no transfer is left.")
@click.option("--timeout", default=600.0, show_default=True, help="Seconds to watch at most.")
@click.pass_context
def transfers(ctx: click.Context, watch: bool, timeout: float) -> None:
    """Handoffs in flight on every node, with progress and rates."""
    config, _ = _ctx(ctx)
    statuses = _statuses(config)
    if not statuses:
        raise NodeError(f"no node of {config_name(config)} answers; start them with `spinekv up`")
    if not watch:
        console.print(_transfers_table(statuses))
        _print_recent(statuses)
        return
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} objects"),
        TextColumn("{task.fields[rate]}"),
    )
    bars: dict[tuple[str, int], tuple[int, int]] = {}  # (node, partition) -> (task, total)
    deadline = time.monotonic() + timeout
    with Live(Group(progress), console=console, refresh_per_second=4) as live:
        while time.monotonic() < deadline:
            active, waiting = _transfer_rows(statuses)
            current = set()
            for t in active:
                key = (t["source"], t["partition"])
                current.add(key)
                rate = f"{t['objects'] / max(t['elapsed'], 1e-3):,.0f} objects/s"
                if key not in bars:
                    desc = f"{t['source']} -> {t['target']} p{t['partition']} ({t['kind']})"
                    total = max(t["total"], 1)
                    bars[key] = (progress.add_task(desc, total=total, rate=rate), total)
                progress.update(bars[key][0], completed=t["objects"], rate=rate)
            for key, (task, total) in bars.items():
                if key not in current:  # finished since the last look
                    progress.update(task, completed=total)
            live.update(Group(Text(f"waiting to start: {waiting}"), progress))
            if not active and not waiting:
                break
            time.sleep(0.5)
            statuses = _statuses(config)
    _print_recent(statuses)


def _print_recent(statuses: dict[str, dict]) -> None:
    done = [
        {"source": name, **t}
        for name, st in statuses.items()
        for t in st["handoff"]["recent"]
        if t["done"]
    ]
    if not done:
        return
    objects = sum(t["objects"] for t in done)
    seconds = sum(max(t["finished"] - t["started"], 1e-3) for t in done)
    console.print(
        f"Recently finished: {len(done)} transfers, {objects} objects, "
        f"{objects / seconds:,.0f} objects/s per transfer on average"
    )


# ---------------------------------------------------------------- bucket types
# Sentences as riak-admin prints them (riak_kv_console: bucket_type_*).

STATUS_SENTENCES = {
    "undefined": "{} is not an existing bucket type",
    "created": "{} has been created but cannot be activated yet",
    "ready": "{} has been created and may be activated",
    "active": "{} is active",
}


@admin.group("bucket-type")
def bucket_type() -> None:
    """Create, activate, update and list bucket types, as riak-admin bucket-type does."""


def _props_arg(name: str, raw: str, verb: str) -> dict:
    """The props of a '{"props":{...}}' argument, or exit saying what is wrong with it."""
    try:
        fields = json.loads(raw)
    except ValueError:
        raise click.ClickException(f"Cannot {verb} bucket type {name}: invalid json") from None
    if not isinstance(fields, dict) or not isinstance(fields.get("props"), dict):
        raise click.ClickException(
            f"Cannot {verb} bucket type {name}: no props field found in json"
        )
    return fields["props"]


def _ask(ctx: click.Context, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    config, chosen = _ctx(ctx)
    return _send(config, _contact(config, chosen), method, path, body)


def _type_path(name: str) -> str:
    return "/admin/bucket-types/" + urllib.parse.quote(name, safe="")


def _fail(first_line: str, answer: Any) -> None:
    reasons = answer.get("errors") or {"": answer.get("error", answer)}
    click.echo(first_line)
    for reason in reasons.values():
        click.echo(reason)
    raise SystemExit(1)


def _show_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@bucket_type.command("create")
@click.argument("name")
@click.argument("props", default='{"props":{}}')
@click.pass_context
def bucket_type_create(ctx: click.Context, name: str, props: str) -> None:
    """Create bucket type NAME (not active yet) with PROPS, e.g. '{"props":{"n_val":2}}'."""
    changes = _props_arg(name, props, "create")
    status, answer = _ask(ctx, "POST", _type_path(name), {"props": changes})
    if status >= 400:
        _fail(f"Error creating bucket type {name}:", answer)
    click.echo(f"{name} created")


@bucket_type.command("activate")
@click.argument("name")
@click.pass_context
def bucket_type_activate(ctx: click.Context, name: str) -> None:
    """Activate NAME once every member has seen it; buckets of it can then be used."""
    path = _type_path(name) + "/activate"
    status, answer = _ask(ctx, "POST", path)
    if status == 404:
        click.echo(STATUS_SENTENCES["undefined"].format(name))
        raise SystemExit(1)
    if status >= 400:
        # "NAME has been created but cannot be activated yet: not yet seen by ..."
        click.echo(answer.get("error", STATUS_SENTENCES["created"].format(name)))
        raise SystemExit(1)
    click.echo(f"{name} has been activated")


@bucket_type.command("update")
@click.argument("name")
@click.argument("props")
@click.pass_context
def bucket_type_update(ctx: click.Context, name: str, props: str) -> None:
    """Change some props of active type NAME, e.g. '{"props":{"allow_mult":false}}'."""
    changes = _props_arg(name, props, "update")
    status, answer = _ask(ctx, "PUT", _type_path(name), {"props": changes})
    if status >= 400:
        _fail(f"Error updating bucket type {name}:", answer)
    click.echo(f"{name} updated")


@bucket_type.command("status")
@click.argument("name")
@click.pass_context
def bucket_type_status(ctx: click.Context, name: str) -> None:
    """Whether NAME exists, has been seen by every member, is active; and its props."""
    _, answer = _ask(ctx, "GET", _type_path(name))
    click.echo(STATUS_SENTENCES[answer["status"]].format(name))
    if answer["status"] == "created" and answer.get("unacknowledged"):
        click.echo(f"not yet seen by: {', '.join(answer['unacknowledged'])}")
    if answer.get("props") is not None:
        click.echo()
        for key, value in answer["props"].items():
            click.echo(f"{key}: {_show_value(value)}")
    if answer["status"] == "undefined":
        raise SystemExit(1)


@bucket_type.command("list")
@click.pass_context
def bucket_type_list(ctx: click.Context) -> None:
    """Every bucket type, and whether it is active."""
    _, answer = _ask(ctx, "GET", "/admin/bucket-types")
    for row in answer["types"]:
        click.echo(f"{row['name']} ({'active' if row['active'] else 'not active'})")
