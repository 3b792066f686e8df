"""A five-node real-process cluster, each node on its own loopback address, for chaos runs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from spinekv.cli import processes
from spinekv.config import load_config
from tests.support import eventually_sync, write_cluster_toml

NODES = 5
BUCKET_TYPE = "chaos"
# The set workload needs siblings kept, never resolved by timestamp.
EXTRA_TOML = f"[bucket_types.{BUCKET_TYPE}]\nallow_mult = true\n"


def _children(pid: int) -> list[int]:
    """The direct children of `pid` (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(c) for c in fh.read().split()]
    except (OSError, ValueError):
        return []


def node_hosts(count: int = NODES) -> list[str]:
    """Node i (1-based) lives on 127.0.0.(10+i): a firewall rule on an address pair cuts a link."""
    return [f"127.0.0.{10 + i}" for i in range(1, count + 1)]


class ChaosCluster:
    """Starts nodes with `spinekv up --detach`, remembers every pid, and can kill them all."""

    def __init__(self, folder: Path, *, max_object_size: int = 1 << 20) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        path = write_cluster_toml(
            folder,
            NODES,
            hosts=node_hosts(),
            extra=EXTRA_TOML,
            max_object_size=max_object_size,
        )
        self.path = path
        self.config = load_config(path)
        self.names = self.config.node_names()
        self.started: dict[int, str] = {}  # every node pid ever started here -> its name

    # ------------------------------------------------------------ addresses

    def host(self, name: str) -> str:
        return self.config.node(name).host

    def url(self, name: str) -> str:
        return self.config.http_url(name)

    # ------------------------------------------------------------ processes

    def pid(self, name: str) -> int | None:
        return processes.node_pid(self.config, name)

    def _remember(self, names: list[str]) -> None:
        for name in names:
            pid = self.pid(name)
            if pid is not None:
                self.started[pid] = name

    def up(self, *names: str, timeout: float = 120) -> None:
        """`spinekv up --detach [NAMES]`, blocking; raises if it does not report success."""
        proc = subprocess.Popen(
            self._up_argv(names),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            out, _ = proc.communicate(timeout=timeout)
        except BaseException:
            self._abandon(proc.pid, proc.kill)
            proc.wait()
            raise
        self._remember(list(names) or self.names)
        if proc.returncode != 0:
            raise RuntimeError(f"spinekv up {' '.join(names)} failed:\n{out}")

    async def up_async(self, *names: str, timeout: float = 120) -> None:
        """As `up`, without blocking the event loop; a cancelled wait kills the command."""
        proc = await asyncio.create_subprocess_exec(
            *self._up_argv(names),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        except BaseException:
            self._abandon(proc.pid, proc.kill)
            await proc.wait()
            raise
        self._remember(list(names) or self.names)
        if proc.returncode != 0:
            raise RuntimeError(f"spinekv up {' '.join(names)} failed:\n{out.decode()}")

    def _abandon(self, up_pid: int, kill: Callable[[], None]) -> None:
        """An `up` cut short: note the nodes it already spawned (they outlive it), then kill it.

        Its children are what it started; a pid file alone may not name them yet.
        """
        with contextlib.suppress(ProcessLookupError):
            os.kill(up_pid, signal.SIGSTOP)  # it spawns nothing more while we look
        for pid in _children(up_pid):
            for name in self.names:
                if self.is_ours(pid, name):
                    self.started[pid] = name
        with contextlib.suppress(ProcessLookupError):
            kill()
        self._remember(self.names)

    def _up_argv(self, names: tuple[str, ...]) -> list[str]:
        spinekv = [sys.executable, "-m", "spinekv", "--config", str(self.path)]
        return [*spinekv, "up", "--detach", *names]

    def is_ours(self, pid: int, name: str) -> bool:
        """True if `pid` is alive and is node `name` of this cluster (guards against pid reuse)."""
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")
        except OSError:
            return False
        return str(self.path).encode() in argv and name.encode() in argv

    def signal(self, name: str, sig: signal.Signals) -> int:
        """Send `sig` to the running node `name`; returns its pid."""
        pid = self.pid(name)
        if pid is None:
            raise RuntimeError(f"{name} is not running; cannot send {sig.name}")
        os.kill(pid, sig)
        return pid

    def wait_dead(self, name: str, pid: int, timeout: float = 10.0) -> None:
        eventually_sync(
            lambda: self.pid(name) != pid,
            what=f"{name} (pid {pid}) to die of SIGKILL",
            timeout=timeout,
            interval=0.02,
        )

    def kill_everything(self) -> None:
        """Last-resort cleanup: SIGCONT then SIGKILL every node pid started here, or still in a
        pid file of this cluster. Never touches a process that is not one of our nodes."""
        pids = dict(self.started)
        for name in self.names:
            pid = self.pid(name)
            if pid is not None:
                pids[pid] = name
        for pid, name in pids.items():
            if self.is_ours(pid, name):
                for sig in (signal.SIGCONT, signal.SIGKILL):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, sig)
        for name in self.names:
            with contextlib.suppress(FileNotFoundError):
                (self.config.node_dir(name) / "node.pid").unlink()

    def logs(self, tail: int = 4000) -> str:
        out = []
        for name in self.names:
            log = self.config.node_dir(name) / "log"
            if log.exists():
                out.append(f"--- {name} ({log}) ---\n" + log.read_text(errors="replace")[-tail:])
        return "\n".join(out)
