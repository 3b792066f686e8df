"""The `spinekv` command line: run and inspect the local cluster."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from . import localcluster
from .cli_admin import admin
from .cli_records import load_demo, trace_command
from .config import ClusterConfig, ConfigError, load_config

console = Console()


def _config(ctx: click.Context) -> ClusterConfig:
    try:
        return load_config(ctx.obj["config"])
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _names(config: ClusterConfig, names: tuple[str, ...]) -> list[str]:
    unknown = [n for n in names if n not in config.node_names()]
    if unknown:
        have = ", ".join(config.node_names())
        raise click.BadParameter(f"unknown node(s) {', '.join(unknown)}; cluster.toml has {have}")
    return list(names) or config.node_names()


@click.group()
@click.option(
    "--config",
    "config_path",
    default=lambda: os.environ.get("SPINEKV_CONFIG", "cluster.toml"),
    show_default="cluster.toml or $SPINEKV_CONFIG",
    help="The cluster.toml to use; node folders live in nodes/ beside it.",
)
@click.pass_context
def main(ctx: click.Context, config_path: str) -> None:
    """spinekv: a Riak-style Dynamo key-value store. Run and inspect the local cluster."""
    ctx.ensure_object(dict)
    ctx.obj["config"] = config_path


@main.command()
@click.option("--detach", is_flag=True, help="Start in the background and return once serving.")
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait for nodes.")
@click.argument("names", nargs=-1)
@click.pass_context
def up(ctx: click.Context, detach: bool, timeout: float, names: tuple[str, ...]) -> None:
    """Start the cluster's nodes (or those NAMED), each as its own process.

    Without names: every member in cluster.toml, and every node that has run
    here before (so a node that joined later comes back too). A member = false
    node that never ran starts only when named; `spinekv admin join` adds it.
    """
    config = _config(ctx)
    wanted = _names(config, names) if names else _default_up(config)
    procs: dict[str, subprocess.Popen] = {}
    try:
        for name in wanted:
            pid = localcluster.node_pid(config, name)
            if pid is not None:
                console.print(f"{name}: already running (pid {pid})")
                continue
            procs[name] = localcluster.start_node(config, name)
        if not _wait_until_serving(config, wanted, procs, timeout):
            if not detach:
                _stop(config, list(procs))
            sys.exit(1)
        if detach:
            return
        console.print("Ctrl-C stops the nodes started here.")
        _watch(config, wanted, procs)
    except KeyboardInterrupt:
        # Ctrl-C at any point, even while still starting, stops what this command started.
        pass
    console.print("stopping ...")
    _stop(config, list(procs))


def _default_up(config: ClusterConfig) -> list[str]:
    return [n.name for n in config.nodes if n.member or (config.node_dir(n.name) / "data").exists()]


def _wait_until_serving(
    config: ClusterConfig, wanted: list[str], procs: dict[str, subprocess.Popen], timeout: float
) -> bool:
    problems = localcluster.wait_serving(config, wanted, procs, timeout)
    for name, why in sorted(problems.items()):
        console.print(f"[red]{name}: {why}[/red]")
    if problems:
        return False
    lagging = localcluster.wait_connected(config, wanted)
    if lagging:
        console.print(f"[yellow]still connecting to peers: {', '.join(lagging)}[/yellow]")
    urls = ", ".join(f"{n} {config.node(n).http_url}" for n in wanted)
    console.print(f"[green]serving[/green]: {urls}")
    return True


def _status_line(config: ClusterConfig, names: list[str], procs: dict) -> Text:
    line = Text(time.strftime("%H:%M:%S "))
    for st in localcluster.status(config, names):
        proc = procs.get(st.name)
        if proc is not None and proc.poll() is not None:
            line.append(f" {st.name} exited({proc.returncode}) ", style="bold red")
        elif st.serving:
            line.append(f" {st.name} up ", style="green")
        else:
            line.append(f" {st.name} {st.state} ", style="yellow")
    return line


def _watch(config: ClusterConfig, names: list[str], procs: dict) -> None:
    with Live(_status_line(config, names, procs), console=console, refresh_per_second=2) as live:
        while True:
            time.sleep(1.0)
            live.update(_status_line(config, names, procs))


def _stop(config: ClusterConfig, names: list[str]) -> None:
    for name in names:
        if localcluster.stop_node(config, name):
            console.print(f"{name}: stopped")


@main.command()
@click.argument("names", nargs=-1)
@click.pass_context
def down(ctx: click.Context, names: tuple[str, ...]) -> None:
    """Stop the running nodes (all, or those NAMED)."""
    config = _config(ctx)
    stopped = 0
    for name in _names(config, names):
        if localcluster.stop_node(config, name):
            console.print(f"{name}: stopped")
            stopped += 1
        else:
            console.print(f"{name}: not running")
    console.print(f"{stopped} node(s) stopped")


@main.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """Show each node, its pid and whether it answers."""
    config = _config(ctx)
    table = Table(title=f"cluster {config.name} ({config.root / 'cluster.toml'})")
    for column in ("node", "pid", "http", "peer port", "ring status", "state"):
        table.add_column(column)
    colours = {"serving": "green", "stopped": "dim", "not answering": "red"}
    statuses = localcluster.status(config)
    ring = localcluster.ring_members(config, [st.name for st in statuses if st.serving])
    serving = 0
    for st in statuses:
        spec = config.node(st.name)
        serving += st.serving
        table.add_row(
            st.name,
            str(st.pid or "-"),
            st.url,
            str(spec.peer_port),
            ring.get(st.name, "not a member") if ring is not None else "?",
            Text(st.state, style=colours[st.state]),
        )
    console.print(table)
    console.print(f"{serving} of {len(config.nodes)} nodes serving")


main.add_command(admin)
main.add_command(load_demo)
main.add_command(trace_command)


@main.command("node")
@click.argument("name")
@click.pass_context
def node_command(ctx: click.Context, name: str) -> None:
    """Run node NAME in the foreground (what `up` starts for each node)."""
    from .server import run_node

    config = _config(ctx)
    _names(config, (name,))
    run_node(config.path, name)
