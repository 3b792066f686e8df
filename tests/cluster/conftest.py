"""A real local cluster for each test: node processes over LevelDB in a temporary folder."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from spinekv.cli import nodehttp, processes
from spinekv.config import load_config
from tests.support import eventually_sync, write_cluster_toml


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)


class ProcessCluster:
    """Drives `spinekv` against a throwaway cluster.toml, as a user would."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.config = load_config(path)

    def cli(
        self, *args: str, timeout: float = 90, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess:
        """Run `spinekv` on this cluster's file; `env` adds to the environment."""
        return subprocess.run(
            [sys.executable, "-m", "spinekv", "--config", str(self.path), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            env=None if env is None else {**os.environ, **env},
        )

    def up(self, *names: str) -> None:
        result = self.cli("up", "--detach", *names)
        assert result.returncode == 0, result.stdout + result.stderr

    def pid(self, name: str) -> int | None:
        return processes.node_pid(self.config, name)

    def url(self, name: str) -> str:
        return self.config.http_url(name)

    def kill9(self, name: str) -> None:
        pid = self.pid(name)
        assert pid is not None, f"{name} is not running"
        os.kill(pid, signal.SIGKILL)
        eventually_sync(lambda: self.pid(name) is None, what=f"{name} to die")

    def request(
        self,
        method: str,
        name: str,
        path: str,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 20,
    ) -> Response:
        req = urllib.request.Request(
            self.url(name) + path, data=data, headers=headers or {}, method=method
        )
        try:
            with nodehttp.urlopen(self.config, req, timeout) as resp:
                return Response(resp.status, dict(resp.headers), resp.read())
        except urllib.error.HTTPError as err:
            return Response(err.code, dict(err.headers), err.read())

    def replicas(self, name: str, bucket: str, key: str) -> list[dict]:
        path = f"/admin/replicas/types/default/buckets/{bucket}/keys/{key}"
        return self.request("GET", name, path).json()["replicas"]

    def wait_seen(self, victim: str, up: bool, timeout: float = 20) -> None:
        """Poll until every other node reports `victim` as up (or down)."""
        others = [n for n in self.config.node_names() if n != victim]
        eventually_sync(
            lambda: all(
                self.request("GET", n, "/admin/status").json()["members"][victim]["up"] == up
                for n in others
            ),
            what=f"{victim} to be seen {'up' if up else 'down'}",
            timeout=timeout,
        )

    def wait_handoff_done(self) -> None:
        """Poll until no node holds data for a partition it does not own."""
        eventually_sync(
            lambda: all(
                not self.request("GET", n, "/admin/status").json()["handoff"]["pending"]
                for n in self.config.node_names()
            ),
            what="hinted handoff to finish",
            timeout=60,
        )

    def kill_all(self) -> None:
        """Last-resort cleanup: SIGKILL every node process still recorded in a pid file."""
        for name in self.config.node_names():
            pid = self.pid(name)
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def logs(self) -> str:
        out = []
        for name in self.config.node_names():
            log = self.config.node_dir(name) / "log"
            if log.exists():
                out.append(f"--- {name} ---\n" + log.read_text()[-3000:])
        return "\n".join(out)


@contextlib.contextmanager
def running_cluster(path: Path, request):
    """Start the members of cluster.toml at `path`; stop every node afterwards, whatever happens."""
    c = ProcessCluster(path)
    try:
        c.up()
        yield c
    finally:
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            print(c.logs())
        c.cli("down", *c.config.node_names(), timeout=60)
        c.kill_all()


@pytest.fixture
def cluster(tmp_path, request):
    with running_cluster(write_cluster_toml(tmp_path, 5), request) as c:
        yield c


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory, request):
    """Five members shared by a module's tests, for tests that keep to buckets of their own
    and change no bucket type: one start (about six seconds) instead of one per test."""
    folder = tmp_path_factory.mktemp("shared")
    with running_cluster(write_cluster_toml(folder, 5), request) as c:
        yield c


@pytest.fixture
def cluster_with_spare(tmp_path, request):
    """Five members serving, and n6 (member = false) configured but not started."""
    with running_cluster(write_cluster_toml(tmp_path, 5, spare=1), request) as c:
        yield c


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, "rep_" + report.when, report)
