"""cluster.toml -> typed, validated settings."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

QuorumSpec = int | str

QUORUM_NAMES = ("r", "w", "dw", "rw", "pr", "pw", "node_confirms")
SYMBOLIC_QUORUMS = ("one", "quorum", "all", "default")


class ConfigError(ValueError):
    """cluster.toml is missing, malformed or inconsistent."""


@dataclass(frozen=True)
class NodeSpec:
    name: str
    host: str
    http_port: int
    peer_port: int
    member: bool = True

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"


@dataclass(frozen=True)
class BucketProps:
    """Riak bucket properties that the data path reads."""

    n_val: int = 3
    allow_mult: bool = False
    last_write_wins: bool = False
    r: QuorumSpec = "quorum"
    w: QuorumSpec = "quorum"
    dw: QuorumSpec = "quorum"
    rw: QuorumSpec = "quorum"
    pr: QuorumSpec = 0
    pw: QuorumSpec = 0
    node_confirms: QuorumSpec = 0
    notfound_ok: bool = True
    basic_quorum: bool = False

    def quorum(self, name: str) -> QuorumSpec:
        return getattr(self, name)


@dataclass(frozen=True)
class ClusterConfig:
    name: str
    ring_size: int
    n_val: int
    nodes: tuple[NodeSpec, ...]
    bucket_defaults: BucketProps
    bucket_types: dict[str, BucketProps] = field(default_factory=dict)
    path: Path = Path("cluster.toml")
    max_object_size: int = 5 * 1024 * 1024
    request_timeout_ms: int = 10_000

    @property
    def root(self) -> Path:
        """The folder holding cluster.toml; runtime folders live here."""
        return self.path.parent

    @property
    def nodes_dir(self) -> Path:
        return self.root / "nodes"

    def node_dir(self, name: str) -> Path:
        return self.nodes_dir / name

    def node(self, name: str) -> NodeSpec:
        for spec in self.nodes:
            if spec.name == name:
                return spec
        raise ConfigError(f"no node named {name!r} in cluster.toml (have: {self.node_names()})")

    def node_names(self) -> list[str]:
        return [n.name for n in self.nodes]

    def members(self) -> list[str]:
        return [n.name for n in self.nodes if n.member]

    def bucket_type(self, name: str) -> BucketProps | None:
        """Props of a bucket type, or None when the type does not exist."""
        return self.bucket_types.get(name)


def _check_quorum_spec(where: str, key: str, value: Any) -> QuorumSpec:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigError(f"{where}.{key} must be an integer or one of {SYMBOLIC_QUORUMS}")
    if isinstance(value, str) and value not in SYMBOLIC_QUORUMS:
        raise ConfigError(f"{where}.{key} = {value!r}: expected an integer or {SYMBOLIC_QUORUMS}")
    if isinstance(value, int) and value < 0:
        raise ConfigError(f"{where}.{key} must not be negative")
    return value


def _props(where: str, table: dict[str, Any], base: BucketProps) -> BucketProps:
    known = set(BucketProps.__dataclass_fields__)
    updates: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            raise ConfigError(f"{where}: unknown bucket property {key!r}")
        if key in QUORUM_NAMES:
            updates[key] = _check_quorum_spec(where, key, value)
        elif key == "n_val":
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{where}.n_val must be a positive integer")
            updates[key] = value
        else:
            if not isinstance(value, bool):
                raise ConfigError(f"{where}.{key} must be true or false")
            updates[key] = value
    return replace(base, **updates)


def _int(table: dict[str, Any], key: str, default: int, where: str) -> int:
    value = table.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{where}.{key} must be an integer")
    return value


def parse_config(data: dict[str, Any], path: Path) -> ClusterConfig:
    """Validate a parsed cluster.toml document."""
    cluster = data.get("cluster", {})
    ring_size = _int(cluster, "ring_size", 64, "cluster")
    if ring_size < 1 or ring_size & (ring_size - 1):
        raise ConfigError(f"cluster.ring_size = {ring_size}: must be a power of two")
    n_val = _int(cluster, "n_val", 3, "cluster")
    if n_val < 1:
        raise ConfigError("cluster.n_val must be at least 1")
    max_object_size = _int(cluster, "max_object_size", 5 * 1024 * 1024, "cluster")
    timeout_ms = _int(cluster, "request_timeout_ms", 10_000, "cluster")
    if timeout_ms <= 0:
        raise ConfigError("cluster.request_timeout_ms must be positive")

    raw_nodes = data.get("node", [])
    if not raw_nodes:
        raise ConfigError("cluster.toml lists no [[node]] tables")
    nodes: list[NodeSpec] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_nodes):
        where = f"node[{i}]"
        name = raw.get("name")
        if not isinstance(name, str) or not name or "/" in name:
            raise ConfigError(f"{where}.name must be a non-empty string without '/'")
        if name in seen:
            raise ConfigError(f"node name {name!r} appears twice")
        seen.add(name)
        host = raw.get("host", "127.0.0.1")
        http_port = _int(raw, "http_port", 0, where)
        peer_port = _int(raw, "peer_port", 0, where)
        for port_name, port in (("http_port", http_port), ("peer_port", peer_port)):
            if not 0 < port < 65536:
                raise ConfigError(f"{where}.{port_name} must be a port number (1-65535)")
        member = raw.get("member", True)
        if not isinstance(member, bool):
            raise ConfigError(f"{where}.member must be true or false")
        nodes.append(NodeSpec(name, host, http_port, peer_port, member))

    defaults = _props("bucket_defaults", data.get("bucket_defaults", {}), BucketProps(n_val=n_val))
    # Riak's `default` type keeps allow_mult=false; every created type defaults to
    # allow_mult=true, so clients opt into siblings by choosing a type.
    types = {"default": defaults}
    for type_name, table in data.get("bucket_types", {}).items():
        if type_name == "default":
            raise ConfigError("bucket_types.default is implicit; set [bucket_defaults] instead")
        types[type_name] = _props(
            f"bucket_types.{type_name}", table, replace(defaults, allow_mult=True)
        )
    return ClusterConfig(
        name=str(cluster.get("name", "spine")),
        ring_size=ring_size,
        n_val=n_val,
        nodes=tuple(nodes),
        bucket_defaults=defaults,
        bucket_types=types,
        path=path,
        max_object_size=max_object_size,
        request_timeout_ms=timeout_ms,
    )


def load_config(path: str | Path) -> ClusterConfig:
    """Read and validate cluster.toml; runtime folders live beside it."""
    path = Path(path).resolve()
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return parse_config(data, path)
