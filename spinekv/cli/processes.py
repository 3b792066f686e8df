"""The local cluster's node processes: start, find, identify and stop them by pid file."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from ..config import ClusterConfig
from . import nodehttp

# What a node that cannot start writes to its log before exiting (spinekv/server.py).
CANNOT_START = "node {name} cannot start: "


@dataclass(frozen=True)
class NodeStatus:
    name: str
    pid: int | None
    serving: bool
    url: str

    @property
    def state(self) -> str:
        if self.pid is None:
            return "stopped"
        return "serving" if self.serving else "not answering"


@dataclass(frozen=True)
class Started:
    """A node process this command started, and where its log stood before it began."""

    proc: subprocess.Popen
    log_from: int


def _node_process(pid: int, name: str) -> psutil.Process | None:
    """The live spinekv node `name` at `pid`, or None (guards against pid reuse)."""
    try:
        proc = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None
    try:
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        argv = proc.cmdline()
    except psutil.NoSuchProcess:
        return None
    except psutil.AccessDenied:
        return proc  # another user's process: trust the pid file
    return proc if any("spinekv" in arg for arg in argv) and name in argv else None


def _pid_file(config: ClusterConfig, name: str) -> Path:
    return config.node_dir(name) / "node.pid"


def _running(config: ClusterConfig, name: str) -> psutil.Process | None:
    try:
        pid = int(_pid_file(config, name).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return _node_process(pid, name)


def node_pid(config: ClusterConfig, name: str) -> int | None:
    """The pid of the running node `name`, or None (a stale pid file is ignored)."""
    proc = _running(config, name)
    return None if proc is None else proc.pid


def ping(config: ClusterConfig, name: str, timeout: float = 1.0) -> bool:
    try:
        with nodehttp.urlopen(config, f"{config.http_url(name)}/ping", timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, TimeoutError):
        return False


def fetch_json(config: ClusterConfig, name: str, path: str, timeout: float = 1.0) -> dict | None:
    """GET `path` from node `name` as JSON; None if it does not answer with JSON."""
    try:
        with nodehttp.urlopen(config, f"{config.http_url(name)}{path}", timeout) as resp:
            return json.load(resp)
    except (urllib.error.URLError, OSError, TimeoutError, ValueError):
        return None


def status(config: ClusterConfig, names: list[str] | None = None) -> list[NodeStatus]:
    out = []
    for name in names or config.node_names():
        pid = node_pid(config, name)
        serving = pid is not None and ping(config, name, 0.5)
        out.append(NodeStatus(name, pid, serving, config.http_url(name)))
    return out


def log_path(config: ClusterConfig, name: str) -> Path:
    return config.node_dir(name) / "log"


def start_node(config: ClusterConfig, name: str) -> Started:
    """Start node `name` as its own process (own session, so a terminal's Ctrl-C is ours)."""
    spec = config.node(name)
    config.node_dir(spec.name).mkdir(parents=True, exist_ok=True)
    with open(log_path(config, name), "ab") as log:
        log_from = log.tell()
        proc = subprocess.Popen(
            [sys.executable, "-m", "spinekv", "--config", str(config.path), "node", spec.name],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            cwd=config.root,
        )
    return Started(proc, log_from)


def _exit_reason(config: ClusterConfig, name: str, started: Started) -> str:
    """Why a node we started has exited: its own one-line reason, else its exit code."""
    prefix = CANNOT_START.format(name=name)
    path = log_path(config, name)
    with contextlib.suppress(OSError), path.open("rb") as log:
        log.seek(started.log_from)
        lines = log.read().decode(errors="replace").splitlines()
        reasons = [line.removeprefix(prefix) for line in lines if line.startswith(prefix)]
        if reasons:
            return reasons[-1]
    return f"exited with code {started.proc.returncode}; see {path}"


def _identity_problem(config: ClusterConfig, name: str, pid: int) -> str | None:
    """None if the node answering at `name`'s address is `name`, pid `pid`, of this cluster;
    else what answers there instead."""
    url = config.http_url(name)
    found = fetch_json(config, name, "/admin/node", 0.5)
    if found == {"node": name, "pid": pid, "cluster": config.name}:
        return None
    if found is None:
        return f"nothing answers at {url}"
    return (
        f"{url} is answered by node {found.get('node')} (pid {found.get('pid')}) "
        f"of cluster {found.get('cluster')!r}, not by this {name} (pid {pid})"
    )


def is_this_node(config: ClusterConfig, name: str, pid: int) -> bool:
    """True if the node answering at `name`'s address is `name`, pid `pid`, of this cluster."""
    return _identity_problem(config, name, pid) is None


def wait_serving(
    config: ClusterConfig,
    pids: dict[str, int],
    started: dict[str, Started],
    timeout: float,
    stopping: Callable[[], bool] = lambda: False,
) -> dict[str, str]:
    """Poll until each node answers as itself (name, pid from `pids`, cluster name).

    Returns {name: problem} for those that did not: the node's own reason if a process
    in `started` exited, else what answered at its address instead. Returns early,
    with nothing judged, once `stopping()` is true.
    """
    deadline = time.monotonic() + timeout
    waiting = set(pids)
    problems: dict[str, str] = {}
    last_seen: dict[str, str] = {}
    while waiting and time.monotonic() < deadline and not stopping():
        for name in sorted(waiting):
            ours = started.get(name)
            if ours is not None and ours.proc.poll() is not None:
                problems[name] = _exit_reason(config, name, ours)
                waiting.discard(name)
                continue
            problem = _identity_problem(config, name, pids[name])
            if problem is None:
                waiting.discard(name)
            else:
                last_seen[name] = problem
        if waiting:
            time.sleep(0.1)
    if stopping():
        return {}
    for name in waiting:
        seen = last_seen.get(name, "no answer")
        problems[name] = f"not serving after {timeout:.0f}s ({seen}); see {log_path(config, name)}"
    return problems


def peers_seen_up(config: ClusterConfig, name: str, timeout: float = 1.0) -> set[str]:
    """The members node `name` currently believes are up (from its /admin/status)."""
    found = fetch_json(config, name, "/admin/status", timeout) or {}
    return {name for name, info in found.get("members", {}).items() if info.get("up")}


def ring_view(config: ClusterConfig, names: list[str]) -> dict | None:
    """/admin/ring of the first of `names` that answers, or None if none does."""
    for name in names:
        ring = fetch_json(config, name, "/admin/ring")
        if ring is not None:
            return ring
    return None


def ring_members(config: ClusterConfig, serving: list[str]) -> dict[str, str] | None:
    """member -> ring status, as the first serving node that answers sees it; None if none do."""
    ring = ring_view(config, serving)
    return None if ring is None else {m["node"]: m["status"] for m in ring["members"]}


def wait_connected(
    config: ClusterConfig,
    names: list[str],
    members: list[str],
    timeout: float = 15.0,
    stopping: Callable[[], bool] = lambda: False,
) -> list[str]:
    """Poll until each named node sees every serving member up; returns those that do not."""
    deadline = time.monotonic() + timeout
    while True:
        serving = {n for n in members if ping(config, n, 0.5)}
        lagging = [n for n in names if not serving <= peers_seen_up(config, n)]
        if not lagging or time.monotonic() >= deadline or stopping():
            return lagging
        time.sleep(0.1)


def stop_nodes(config: ClusterConfig, names: list[str], timeout: float = 10.0) -> list[str]:
    """SIGTERM the running nodes among `names` together, wait for them together, SIGKILL
    any still there at the deadline. Returns the names that were running."""
    running: dict[str, psutil.Process] = {}
    for name in names:
        proc = _running(config, name)
        if proc is None:
            # A node killed outright leaves its pid file behind; it names no live process.
            _pid_file(config, name).unlink(missing_ok=True)
            continue
        running[name] = proc
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    alive = _wait_gone(list(running.values()), timeout)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    _wait_gone(alive, timeout)
    for name in running:
        _pid_file(config, name).unlink(missing_ok=True)
    return list(running)


def _wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Poll every 20 ms until `procs` have exited; returns those still alive at the deadline.

    A node stops in about half a second; the zombie a detached node leaves until init
    reaps it counts as stopped (psutil.wait_procs waited for the reaping, two seconds).
    """
    deadline = time.monotonic() + timeout
    while procs:
        procs = [proc for proc in procs if not _gone(proc)]
        if not procs or time.monotonic() >= deadline:
            break
        time.sleep(0.02)
    return procs


def _gone(proc: psutil.Process) -> bool:
    """Exited: no such process, or a zombie (it has stopped; only its parent's reaping is left)."""
    try:
        if proc.status() != psutil.STATUS_ZOMBIE:
            return False
        # Our own child (a foreground `up`): reap it now. A detached node's parent is init,
        # which reaps in its own time; waiting for that cost `down` two seconds.
        with contextlib.suppress(psutil.TimeoutExpired, ChildProcessError):
            proc.wait(0)
    except psutil.NoSuchProcess:
        pass
    return True
