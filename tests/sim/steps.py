"""Operations on a simulated cluster, recorded as a register history and checked once healed."""

from __future__ import annotations

import itertools

from tests.history import History, check_register

from .cluster import Outcome, SimCluster

KEYS = ("a", "b", "c")
NAMES = ("n1", "n2", "n3", "n4", "n5")
TYPE, BUCKET = "sets", "model"


class Steps:
    """The operations, shared by the state machine and the kv679 story it left."""

    def __init__(self, seed: int = 0) -> None:
        self.cluster = SimCluster(seed)
        self.history = History(clock=lambda: self.cluster.now)
        self._values = itertools.count()
        self.checked = 0

    def write(self, key: str, node: str, *, delete: bool = False, blind: bool = False) -> str:
        """Read, then write (or delete) under the read's context; blind: no read, no context."""
        cluster = self.cluster
        if blind:
            read = Outcome("ok", [], {})
        else:
            read = cluster.run_until(cluster.get(node, TYPE, BUCKET, key))
        if read.type != "ok":
            return "read failed"
        saw = sorted(v.decode() for v in read.value)
        value = f"{'d' if delete else 'v'}{next(self._values)}"
        op = self.history.invoke(
            0, "write", {"key": key, "value": value, "saw": saw, "delete": delete}
        )
        context = read.context or {}
        if delete:
            outcome = cluster.run_until(cluster.delete(node, TYPE, BUCKET, key, context))
        else:
            outcome = cluster.run_until(
                cluster.put(node, TYPE, BUCKET, key, value.encode(), context)
            )
        self.history.finish(op, outcome.type, outcome.error)
        return outcome.type

    def read(self, key: str, node: str) -> list[str] | None:
        read = self.cluster.run_until(self.cluster.get(node, TYPE, BUCKET, key))
        return sorted(v.decode() for v in read.value) if read.type == "ok" else None

    def heal_and_check(self) -> None:
        """Heal, restart, settle; then every acknowledged write must be readable."""
        cluster = self.cluster
        cluster.heal_all()
        cluster.network.faults.drop = 0.0
        cluster.settle()
        for key in KEYS:
            op = self.history.invoke(1, "read", key)
            read = cluster.run_until(cluster.get(NAMES[0], TYPE, BUCKET, key, r=3, pr=3))
            assert read.type == "ok", f"final read of {key} failed: {read.error}"
            self.history.ok(op, {"key": key, "values": sorted(v.decode() for v in read.value)})
        result = check_register(self.history)
        assert result.valid, result.summary() + "\nfaults: " + repr(cluster.log)
        self.checked += 1

    def close(self) -> None:
        self.cluster.close()
