"""`spinekv up`, `down`, `status` and `node`: run and inspect the local cluster's nodes."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import click
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ..config import ClusterConfig
from ..security.secrets import make_cluster_secret
from . import members, nodehttp, processes
from .common import cluster_config, config_name, console, known_names, shown


class StopRequest:
    """Set by SIGINT or SIGTERM; `up`'s loops poll it.

    A flag rather than KeyboardInterrupt: Python raises KeyboardInterrupt in whatever
    frame is running when the signal lands, and when that frame is a finaliser (an HTTP
    response being closed by the garbage collector, say) the exception is printed as
    "Exception ignored" and lost, and `up` would go on watching its nodes for ever.
    """

    def __init__(self) -> None:
        self.requested = False

    def __call__(self) -> bool:
        return self.requested

    def set(self, *_: object) -> None:
        self.requested = True

    def sleep(self, seconds: float) -> None:
        """Sleep up to `seconds`, waking within 0.1 s of a stop request."""
        deadline = time.monotonic() + seconds
        while not self.requested and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.1))


@contextmanager
def _stop_on_signals() -> Iterator[StopRequest]:
    stop = StopRequest()
    # A signal this process was started with ignored (SIGINT for `spinekv up &` run from a
    # script) stays ignored, as Python itself leaves it.
    signals = [s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) != signal.SIG_IGN]
    previous = {sig: signal.signal(sig, stop.set) for sig in signals}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@click.command()
@click.option("--detach", is_flag=True, help="Start in the background and return once serving.")
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait for nodes.")
@click.argument("names", nargs=-1)
@click.pass_context
def up(ctx: click.Context, detach: bool, timeout: float, names: tuple[str, ...]) -> None:
    """Start the cluster's members (or the nodes NAMED), each as its own process.

    Without names: the nodes the ring counts as members (a running node's ring, else
    the ring the nodes saved, else the file's member = true nodes). So a node that
    joined later comes back, one that left does not, and a spare (member = false)
    starts only when named; `spinekv admin join` then adds it.
    """
    config = cluster_config(ctx)
    if make_cluster_secret(config.secret_file):
        console.print(f"wrote a new cluster secret to {shown(config.secret_file)}", highlight=False)
    # Every check that a node serves goes through the cluster CA: an unreadable one stops
    # `up` here, before it starts a node it could never see.
    nodehttp.ssl_context(config)
    wanted = known_names(config, names) if names else members.ring_members(config)
    started: dict[str, processes.Started] = {}
    with _stop_on_signals() as stop:
        pids: dict[str, int] = {}
        for name in wanted:
            if stop():
                break
            pid = processes.node_pid(config, name)
            if pid is not None:
                console.print(f"{name}: already running (pid {pid})")
            else:
                started[name] = processes.start_node(config, name)
                pid = started[name].proc.pid
            pids[name] = pid
        ok = not stop() and _wait_until_serving(config, pids, started, timeout, stop)
        if detach and not stop():
            # Nodes that did start keep running: fix the others and `up` again.
            sys.exit(0 if ok else 1)
        if ok:
            console.print("Ctrl-C stops the nodes started here.")
            _watch(config, wanted, started, stop)
        console.print("stopping ...")
        for name in processes.stop_nodes(config, list(started)):
            console.print(f"{name}: stopped")
    if not stop():
        sys.exit(1)  # in the foreground only a failure to start ends `up` without Ctrl-C


def _wait_until_serving(
    config: ClusterConfig,
    pids: dict[str, int],
    started: dict[str, processes.Started],
    timeout: float,
    stop: StopRequest,
) -> bool:
    problems = processes.wait_serving(config, pids, started, timeout, stop)
    for name, why in sorted(problems.items()):
        console.print(f"[red]{name}: {why}[/red]", highlight=False)
    if problems or stop():
        return False
    names = list(pids)
    lagging = processes.wait_connected(config, names, members.ring_members(config), stopping=stop)
    if lagging:
        console.print(f"[yellow]still connecting to peers: {', '.join(lagging)}[/yellow]")
    urls = ", ".join(f"{n} {config.http_url(n)}" for n in names)
    console.print(f"[green]serving[/green]: {urls}")
    return not stop()


def _status_line(config: ClusterConfig, names: list[str], started: dict) -> Text:
    line = Text(time.strftime("%H:%M:%S "))
    for st in processes.status(config, names):
        ours = started.get(st.name)
        if ours is not None and ours.proc.poll() is not None:
            line.append(f" {st.name} exited({ours.proc.returncode}) ", style="bold red")
        elif st.serving:
            line.append(f" {st.name} up ", style="green")
        else:
            line.append(f" {st.name} {st.state} ", style="yellow")
    return line


def _watch(config: ClusterConfig, names: list[str], started: dict, stop: StopRequest) -> None:
    with Live(_status_line(config, names, started), console=console, refresh_per_second=2) as live:
        while not stop():
            stop.sleep(1.0)
            live.update(_status_line(config, names, started))


@click.command()
@click.argument("names", nargs=-1)
@click.pass_context
def down(ctx: click.Context, names: tuple[str, ...]) -> None:
    """Stop the running nodes (all, or those NAMED)."""
    config = cluster_config(ctx)
    wanted = known_names(config, names) or config.node_names()
    stopped = processes.stop_nodes(config, wanted)
    for name in wanted:
        console.print(f"{name}: {'stopped' if name in stopped else 'not running'}")
    console.print(f"{len(stopped)} node(s) of {config_name(config)} stopped")


@click.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """Show each node, its pid and whether it answers."""
    config = cluster_config(ctx)
    table = Table(title=f"cluster {config.name} ({config_name(config)})")
    for column in ("node", "pid", "http", "peer port", "ring status", "state"):
        table.add_column(column)
    colours = {"serving": "green", "stopped": "dim", "not answering": "red"}
    statuses = processes.status(config)
    ring = processes.ring_members(config, [st.name for st in statuses if st.serving])
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
    console.print(f"node folders: {shown(config.nodes_dir)}", highlight=False)


@click.command("node")
@click.argument("name")
@click.pass_context
def node_command(ctx: click.Context, name: str) -> None:
    """Run node NAME in the foreground (what `up` starts for each node)."""
    from ..server import run_node

    config = cluster_config(ctx)
    known_names(config, (name,))
    run_node(config.path, name)
