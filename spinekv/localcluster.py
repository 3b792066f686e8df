"""The local cluster's node processes: start, find, probe and stop them by pid file."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from .config import ClusterConfig, NodeSpec


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


def _is_node_process(pid: int, name: str) -> bool:
    """True if `pid` is alive and is the spinekv node `name` (guards against pid reuse)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = fh.read().split(b"\0")
    except OSError:
        return True  # no /proc: trust the pid file
    if any(arg == b"<defunct>" for arg in argv) or _is_zombie(pid):
        return False
    return b"spinekv" in b" ".join(argv) and name.encode() in argv


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


def node_pid(config: ClusterConfig, name: str) -> int | None:
    """The pid of the running node `name`, or None (a stale pid file is ignored)."""
    try:
        pid = int((config.node_dir(name) / "node.pid").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _is_node_process(pid, name) else None


def ping(spec: NodeSpec, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"{spec.http_url}/ping", timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, TimeoutError):
        return False


def status(config: ClusterConfig, names: list[str] | None = None) -> list[NodeStatus]:
    out = []
    for name in names or config.node_names():
        spec = config.node(name)
        pid = node_pid(config, name)
        out.append(NodeStatus(name, pid, pid is not None and ping(spec, 0.5), spec.http_url))
    return out


def start_node(config: ClusterConfig, name: str) -> subprocess.Popen:
    """Start node `name` as its own process (own session, so a terminal's Ctrl-C is ours)."""
    spec = config.node(name)
    node_dir = config.node_dir(spec.name)
    node_dir.mkdir(parents=True, exist_ok=True)
    config_path = config.path
    with open(node_dir / "log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "spinekv", "--config", str(config_path), "node", spec.name],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            cwd=config.root,
        )


def wait_serving(
    config: ClusterConfig,
    names: list[str],
    procs: dict[str, subprocess.Popen],
    timeout: float = 30.0,
) -> dict[str, str]:
    """Poll until every named node answers /ping; returns {name: problem} for those that did not."""
    deadline = time.monotonic() + timeout
    waiting = set(names)
    problems: dict[str, str] = {}
    while waiting and time.monotonic() < deadline:
        for name in sorted(waiting):
            proc = procs.get(name)
            if proc is not None and proc.poll() is not None:
                problems[name] = f"exited with code {proc.returncode}; see {log_path(config, name)}"
                waiting.discard(name)
            elif ping(config.node(name), 0.5):
                waiting.discard(name)
        if waiting:
            time.sleep(0.1)
    for name in waiting:
        problems[name] = f"did not answer within {timeout:.0f}s; see {log_path(config, name)}"
    return problems


def fetch_json(spec: NodeSpec, path: str, timeout: float = 1.0) -> dict | None:
    """GET `path` from the node as JSON; None if it does not answer with JSON."""
    try:
        with urllib.request.urlopen(f"{spec.http_url}{path}", timeout=timeout) as resp:
            return json.load(resp)
    except (urllib.error.URLError, OSError, TimeoutError, ValueError):
        return None


def peers_seen_up(spec: NodeSpec, timeout: float = 1.0) -> set[str]:
    """The members node `spec` currently believes are up (from its /admin/status)."""
    status = fetch_json(spec, "/admin/status", timeout) or {}
    return {name for name, info in status.get("members", {}).items() if info.get("up")}


def ring_members(config: ClusterConfig, serving: list[str]) -> dict[str, str] | None:
    """member -> ring status, as the first serving node that answers sees it; None if none do."""
    for name in serving:
        ring = fetch_json(config.node(name), "/admin/ring")
        if ring is not None:
            return {m["node"]: m["status"] for m in ring["members"]}
    return None


def wait_connected(config: ClusterConfig, names: list[str], timeout: float = 15.0) -> list[str]:
    """Poll until each named node sees every serving member up; returns those that do not."""
    deadline = time.monotonic() + timeout
    while True:
        serving = {n for n in config.members() if ping(config.node(n), 0.5)}
        lagging = [n for n in names if not serving <= peers_seen_up(config.node(n))]
        if not lagging or time.monotonic() >= deadline:
            return lagging
        time.sleep(0.1)


def log_path(config: ClusterConfig, name: str) -> str:
    return str(config.node_dir(name) / "log")


def stop_node(config: ClusterConfig, name: str, timeout: float = 10.0) -> bool:
    """SIGTERM the node, wait for it to exit, SIGKILL it if it will not. True if it was running."""
    pid = node_pid(config, name)
    if pid is None:
        # A node killed outright leaves its pid file behind; it names no live process.
        with contextlib.suppress(FileNotFoundError):
            (config.node_dir(name) / "node.pid").unlink()
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _is_node_process(pid, name):
        _reap(pid)
        time.sleep(0.05)
    if _is_node_process(pid, name):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _reap(pid)
    with contextlib.suppress(FileNotFoundError):
        (config.node_dir(name) / "node.pid").unlink()
    return True


def _reap(pid: int) -> None:
    # Our own children must be waited for, or they linger as zombies.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
