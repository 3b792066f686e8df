"""cluster.toml -> typed, validated settings."""

from __future__ import annotations

import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .props import BucketProps, PropsError, props_problems, type_defaults


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


ROLES = ("clinical", "admin", "service")


@dataclass(frozen=True, slots=True)
class User:
    """A record API user: a bearer token and the role it acts in."""

    name: str
    role: str
    token: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class RecordSettings:
    """The record API's place in the store and the NHS numbers it may allocate."""

    bucket_type: str = "records"
    # Inclusive range new patients' numbers are drawn from; the 999 range is never issued.
    nhs_number_range: tuple[int, int] = (9_990_000_000, 9_999_999_999)


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
    users: tuple[User, ...] = ()
    records: RecordSettings = field(default_factory=RecordSettings)

    def user_by_token(self, token: str) -> User | None:
        for user in self.users:
            if secrets.compare_digest(user.token.encode(), token.encode()):
                return user
        return None

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
        """Props of a bucket type listed in cluster.toml, or None when it is not listed."""
        return self.bucket_types.get(name)

    @property
    def type_defaults(self) -> BucketProps:
        """Where a created type starts: [bucket_defaults] with siblings, as Riak's new types."""
        return type_defaults(self.bucket_defaults)


def _props(where: str, table: dict[str, Any], base: BucketProps, *, typed: bool) -> BucketProps:
    try:
        props = base.updated(table)
    except PropsError as exc:
        name, reason = next(iter(exc.errors.items()))
        raise ConfigError(f"{where}.{name}: {reason}") from None
    for name, reason in props_problems(props, typed=typed).items():
        raise ConfigError(f"{where}.{name}: {reason}")
    return props


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

    defaults = _props(
        "bucket_defaults", data.get("bucket_defaults", {}), BucketProps(n_val=n_val), typed=False
    )
    # Riak's `default` type keeps allow_mult=false; every created type defaults to
    # allow_mult=true, so clients opt into siblings by choosing a type.
    types = {"default": defaults}
    for type_name, table in data.get("bucket_types", {}).items():
        if type_name == "default":
            raise ConfigError("bucket_types.default is implicit; set [bucket_defaults] instead")
        if "/" in type_name:
            raise ConfigError(f"bucket_types.{type_name}: a type name cannot contain '/'")
        types[type_name] = _props(
            f"bucket_types.{type_name}", table, type_defaults(defaults), typed=True
        )
    return ClusterConfig(
        users=_users(data.get("user", [])),
        records=_records(data.get("records", {}), types),
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


def _users(raw_users: Any) -> tuple[User, ...]:
    if not isinstance(raw_users, list):
        raise ConfigError("user must be an array of [[user]] tables")
    users: list[User] = []
    for i, raw in enumerate(raw_users):
        where = f"user[{i}]"
        values = {}
        for key in ("name", "role", "token"):
            value = raw.get(key) if isinstance(raw, dict) else None
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{where}.{key} must be a non-empty string")
            values[key] = value
        if values["role"] not in ROLES:
            raise ConfigError(f"{where}.role = {values['role']!r}: expected one of {ROLES}")
        if any(u.token == values["token"] for u in users):
            raise ConfigError(f"{where}.token is used by another user")
        if any(u.name == values["name"] for u in users):
            raise ConfigError(f"user name {values['name']!r} appears twice")
        users.append(User(values["name"], values["role"], values["token"]))
    return tuple(users)


def _records(table: Any, types: Mapping[str, BucketProps]) -> RecordSettings:
    if not isinstance(table, dict):
        raise ConfigError("records must be a table")
    bucket_type = table.get("bucket_type", "records")
    if not isinstance(bucket_type, str) or ("bucket_type" in table and bucket_type not in types):
        raise ConfigError(f"records.bucket_type = {bucket_type!r}: no such [bucket_types] entry")
    # Without the type the record API answers 503 and says so; the KV API is unaffected.
    if bucket_type in types and not types[bucket_type].allow_mult:
        raise ConfigError(f"records.bucket_type {bucket_type!r} must keep siblings (allow_mult)")
    raw = table.get("nhs_number_range", ["9990000000", "9999999999"])
    if (
        not isinstance(raw, list)
        or len(raw) != 2
        or not all(isinstance(x, str) and len(x) == 10 and x.isascii() and x.isdigit() for x in raw)
        or raw[0] > raw[1]
    ):
        raise ConfigError('records.nhs_number_range must be ["FIRST", "LAST"], ten digits each')
    return RecordSettings(bucket_type, (int(raw[0]), int(raw[1])))


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
