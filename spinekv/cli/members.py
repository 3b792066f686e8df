"""Which nodes a plain `spinekv up` starts: the ring's members, not every node in the file."""

from __future__ import annotations

from functools import reduce

from .. import ringstate
from ..config import ClusterConfig
from ..node.membership import RING_META
from ..ringstate import RingState
from ..storage.base import StorageError
from ..storage.leveldb import LevelDBBackend
from . import processes


def ring_members(config: ClusterConfig) -> list[str]:
    """The nodes of the cluster file that the cluster's ring counts as members, in file order.

    Where the ring comes from, in this order:
    - a running node of this cluster: its ring is current (gossip keeps it so), and its
      LevelDB cannot be opened while it runs anyway (it holds the lock);
    - else the rings the stopped nodes persisted, joined as ring states join: that is the
      ring the cluster comes back with, so a node that has left is no longer in it, and
      one that joined later is;
    - else (a new cluster, nothing persisted) the file's own `member = true` nodes.
    """
    running = _running_view(config)
    if running is not None:
        members = running
    else:
        persisted = _persisted_rings(config)
        members = (
            set(reduce(ringstate.merge, persisted).member_names())
            if persisted
            else set(config.members())
        )
    return [name for name in config.node_names() if name in members]


def _running_view(config: ClusterConfig) -> set[str] | None:
    for name in config.node_names():
        pid = processes.node_pid(config, name)
        if pid is None or not processes.is_this_node(config, name, pid):
            continue
        ring = processes.fetch_json(config, name, "/admin/ring")
        if ring is not None:
            return {m["node"] for m in ring["members"]}
    return None


def _persisted_rings(config: ClusterConfig) -> list[RingState]:
    rings = []
    for name in config.node_names():
        data = config.node_dir(name) / "data"
        if not data.exists():
            continue
        try:
            backend = LevelDBBackend(data, cache_mb=1)
        except StorageError:
            continue  # locked: the node is starting right now, and will answer for itself
        try:
            raw = backend.get_meta(RING_META)
        finally:
            backend.close()
        if raw is None:
            continue
        try:
            rings.append(ringstate.decode(raw))
        except ValueError:
            continue  # the node refuses to start over it, and says so in its log
    return rings
