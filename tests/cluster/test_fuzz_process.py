"""Fuzzing one real node process (uvloop, LevelDB): it answers deliberately and stays up.

The requests and the judging are those of tests/integration/test_http_fuzz.py; here they go
to a node running as its own OS process, as `spinekv up` starts it, so what differs
from the in-process cluster (uvloop's timers, LevelDB, the process itself) is covered.
"""

from __future__ import annotations

import asyncio
import os

from tests.cluster.conftest import running_cluster
from tests.integration.test_http_fuzz import CANARY_TOML, fuzz_node
from tests.support import write_cluster_toml


def test_fuzzed_node_process_answers_deliberately_and_stays_alive(tmp_path, request):
    path = write_cluster_toml(tmp_path, 5, extra=CANARY_TOML)
    with running_cluster(path, request) as cluster:
        pid = cluster.pid("n1")
        assert pid is not None
        bases = {name: cluster.url(name) for name in cluster.config.node_names()}
        findings = asyncio.run(fuzz_node(bases, "n1", examples=200, sweep=True))
        assert not findings.wrong, findings.report()
        # The same process still serves: it neither died nor was restarted.
        assert cluster.pid("n1") == pid
        os.kill(pid, 0)
        assert cluster.request("GET", "n1", "/ping").body == b"OK"
