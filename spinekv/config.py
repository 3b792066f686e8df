"""cluster.toml -> typed, validated settings."""

from __future__ import annotations

import secrets
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

QuorumSpec = int | str
# A commit hook as Riak writes it ({"mod": M, "fun": F} or {"name": N}): its sorted items.
Hook = tuple[tuple[str, str], ...]

QUORUM_NAMES = ("r", "w", "dw", "rw", "pr", "pw", "node_confirms")
SYMBOLIC_QUORUMS = ("one", "quorum", "all", "default")
# A bucket property cannot say "default": it is what a request's "default" falls back on.
PROP_QUORUMS = ("one", "quorum", "all")
STD_KEYFUN = ("riak_core_util", "chash_std_keyfun")
# Integer props are stored and gossiped as msgpack integers; nothing sensible is larger.
MAX_PROP_INT = 2**32 - 1
DATATYPES = ("map", "set", "counter", "hll", "gset")


class ConfigError(ValueError):
    """cluster.toml is missing, malformed or inconsistent."""


class PropsError(ValueError):
    """Bucket properties that cannot be set; `errors` maps each bad property to its reason."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__("; ".join(self.errors.values()))


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
    """Riak bucket properties. The data path reads the first block; the rest are Riak's
    remaining properties, kept and shown so that Riak clients find what they expect."""

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

    write_once: bool = False
    dvv_enabled: bool = False
    young_vclock: int = 20
    old_vclock: int = 86400
    small_vclock: int = 50
    big_vclock: int = 50
    chash_keyfun: tuple[str, str] = STD_KEYFUN
    linkfun: tuple[str, str] = ("riak_kv_wm_link_walker", "mapreduce_linkfun")
    precommit: tuple[Hook, ...] = ()
    postcommit: tuple[Hook, ...] = ()
    search: bool = False
    search_index: str | None = None
    backend: str | None = None
    datatype: str | None = None
    consistent: bool = False

    def quorum(self, name: str) -> QuorumSpec:
        return getattr(self, name)

    def updated(self, changes: Mapping[str, Any]) -> BucketProps:
        """These props with `changes` (JSON or TOML values) applied; PropsError names bad ones."""
        return replace(self, **coerce_props(changes))

    def to_json(self, names: Iterable[str] | None = None) -> dict[str, Any]:
        """Riak's JSON form of every property (or of `names`); unset optional ones are left out."""
        out: dict[str, Any] = {}
        for name in PROP_NAMES if names is None else names:
            value = getattr(self, name)
            if value is None:
                continue
            if name in ("chash_keyfun", "linkfun"):
                value = {"mod": value[0], "fun": value[1]}
            elif name in ("precommit", "postcommit"):
                value = [dict(hook) for hook in value]
            out[name] = value
        return out


PROP_NAMES: tuple[str, ...] = tuple(BucketProps.__dataclass_fields__)


# ------------------------------------------------------------------ property values


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    # Riak takes the strings too (riak_kv_bucket:coerce_bool), and clients send them.
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f'{name} should be "true" or "false"')


def _int_in(value: Any, lowest: int) -> bool:
    return (
        isinstance(value, int) and not isinstance(value, bool) and lowest <= value <= MAX_PROP_INT
    )


def _positive_int(name: str, value: Any) -> int:
    if _int_in(value, 1):
        return value
    raise ValueError(f"{name} must be a positive integer (at most {MAX_PROP_INT})")


def _non_negative_int(name: str, value: Any) -> int:
    if _int_in(value, 0):
        return value
    raise ValueError(f"{name} must be an integer >= 0 (at most {MAX_PROP_INT})")


def _quorum(name: str, value: Any) -> QuorumSpec:
    lowest = 1 if name in ("r", "w", "rw") else 0
    if isinstance(value, str) and value.strip().lower() in PROP_QUORUMS:
        return value.strip().lower()
    if _int_in(value, lowest):
        return value
    raise ValueError(f"{name} must be an integer >= {lowest} or one of one, quorum, all")


def _is_text(value: Any) -> bool:
    """A non-empty string that UTF-8 can carry (JSON may hold lone surrogates; msgpack cannot)."""
    if not isinstance(value, str) or not value:
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _modfun(name: str, value: Any) -> tuple[str, str]:
    if (
        isinstance(value, dict)
        and set(value) == {"mod", "fun"}
        and all(_is_text(v) for v in value.values())
    ):
        return (value["mod"], value["fun"])
    raise ValueError(f'{name} must be an object {{"mod": "...", "fun": "..."}}')


def _keyfun(name: str, value: Any) -> tuple[str, str]:
    modfun = _modfun(name, value)
    if modfun != STD_KEYFUN:
        # Keys are placed on the ring by (type, bucket, key) alone; another function would
        # silently move every key of the bucket.
        raise ValueError(f"{name}: only {STD_KEYFUN[0]}:{STD_KEYFUN[1]} is supported")
    return modfun


def _hooks(name: str, value: Any) -> tuple[Hook, ...]:
    if not isinstance(value, list):
        raise ValueError(f"{name} must be a list of hooks")
    hooks = []
    for hook in value:
        shape_ok = isinstance(hook, dict) and set(hook) in ({"mod", "fun"}, {"name"})
        if not shape_ok or not all(_is_text(v) for v in hook.values()):
            raise ValueError(
                f'{name}: each hook must be {{"mod": "...", "fun": "..."}} or {{"name": "..."}}'
            )
        hooks.append(tuple(sorted(hook.items())))
    return tuple(hooks)


def _optional_text(name: str, value: Any) -> str | None:
    if value is None or _is_text(value):
        return value
    raise ValueError(f"{name} must be a non-empty string or null")


def _datatype(name: str, value: Any) -> str | None:
    if value is None or value in DATATYPES:
        return value
    raise ValueError(f"{value!r} not supported for bucket datatype property (one of {DATATYPES})")


_COERCE: dict[str, Callable[[str, Any], Any]] = {
    **dict.fromkeys(QUORUM_NAMES, _quorum),
    **dict.fromkeys(
        (
            "allow_mult",
            "last_write_wins",
            "notfound_ok",
            "basic_quorum",
            "write_once",
            "dvv_enabled",
            "search",
            "consistent",
        ),
        _bool,
    ),
    **dict.fromkeys(("n_val", "old_vclock", "small_vclock", "big_vclock"), _positive_int),
    "young_vclock": _non_negative_int,
    "chash_keyfun": _keyfun,
    "linkfun": _modfun,
    "precommit": _hooks,
    "postcommit": _hooks,
    "search_index": _optional_text,
    "backend": _optional_text,
    "datatype": _datatype,
}
assert set(_COERCE) == set(PROP_NAMES), "every bucket property needs a coercion"


def coerce_props(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Property values as BucketProps holds them; PropsError names every bad or unknown one."""
    out: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, value in changes.items():
        coerce = _COERCE.get(name)
        if coerce is None:
            errors[name] = f"unknown bucket property {name!r}"
            continue
        try:
            out[name] = coerce(name, value)
        except ValueError as exc:
            errors[name] = str(exc)
    if errors:
        raise PropsError(errors)
    return out


def props_problems(props: BucketProps, *, typed: bool) -> dict[str, str]:
    """Combinations a bucket's props must never have, whichever way they were reached.

    `typed` is False for the `default` type and its buckets, which cannot hold data types.
    """
    problems: dict[str, str] = {}
    for name in QUORUM_NAMES:
        value = props.quorum(name)
        if isinstance(value, int) and value > props.n_val:
            problems[name] = f"{name}={value} is more than n_val={props.n_val}"
    if props.last_write_wins and props.dvv_enabled:
        problems["dvv_enabled"] = "If last_write_wins is true, dvv_enabled must be false"
    if props.consistent:
        problems["consistent"] = "consistent=true: spinekv has no strongly consistent buckets"
    if props.datatype is not None:
        if not typed:
            problems["datatype"] = "datatype can only be set on a bucket type, not on `default`"
        elif props.write_once:
            problems["datatype"] = "Write once buckets must not have datatype defined"
        elif not props.allow_mult:
            problems["allow_mult"] = "Data Type buckets must be allow_mult=true"
    return problems


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
    # [cluster] nodes_dir as written; None: derived from the file's name (see nodes_dir).
    nodes_dir_setting: str | None = None

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
        """Where node folders live, relative to the file's folder: [cluster] nodes_dir, else
        nodes/ for cluster.toml and nodes-<stem>/ for any other file, so that two cluster
        files in one folder never share (or stop) each other's nodes."""
        if self.nodes_dir_setting is not None:
            return self.root / self.nodes_dir_setting
        if self.path.name == "cluster.toml":
            return self.root / "nodes"
        return self.root / f"nodes-{self.path.stem}"

    def node_dir(self, name: str) -> Path:
        return self.nodes_dir / name

    def node(self, name: str) -> NodeSpec:
        for spec in self.nodes:
            if spec.name == name:
                return spec
        raise ConfigError(f"no node named {name!r} in {self.path} (have: {self.node_names()})")

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


def type_defaults(defaults: BucketProps) -> BucketProps:
    # Riak's created types have allow_mult and dvv_enabled on; dvv_enabled stays off where
    # the defaults ask for last_write_wins, which Riak refuses alongside it.
    return replace(defaults, allow_mult=True, dvv_enabled=not defaults.last_write_wins)


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
    nodes_dir = cluster.get("nodes_dir")
    if nodes_dir is not None and (not isinstance(nodes_dir, str) or not nodes_dir.strip()):
        raise ConfigError("cluster.nodes_dir must be a non-empty string (a folder)")

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
        nodes_dir_setting=nodes_dir,
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
