"""cluster.toml -> typed, validated settings, against a schema that refuses unknown keys."""

from __future__ import annotations

import difflib
import ipaddress
import tomllib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .props import PROP_NAMES, BucketProps, PropsError, props_problems, type_defaults
from .replqueue import QUEUE_NAME, Filter, FilterError, parse_filter
from .security.secrets import is_hashed

ROLES = ("clinical", "admin", "service")
# Riak's permissions (riak_core_security), the names a grant may give.
# `repl` (ours): fetch and acknowledge replication queues, which reads every queued object.
PERMISSIONS = ("get", "put", "delete", "list", "index", "props", "admin", "repl")
# How a client proves who it is (Riak's sources): a bearer token, HTTP basic, or its address.
SOURCE_METHODS = ("token", "password", "trust")
ANY = "any"


class ConfigError(ValueError):
    """The config file (cluster.toml or another) is missing, malformed or inconsistent."""


@dataclass(frozen=True)
class NodeSpec:
    name: str
    host: str
    http_port: int
    peer_port: int
    member: bool = True


@dataclass(frozen=True, slots=True)
class Grant:
    """Permissions on `any` bucket type (bucket_type None), on one type, or on one bucket of it.

    As in Riak, a grant on `any` does not reach the record API's bucket types: only a grant
    that names such a type does.
    """

    permissions: frozenset[str]
    bucket_type: str | None = None
    bucket: str | None = None

    @property
    def scope(self) -> str:
        if self.bucket_type is None:
            return ANY
        return self.bucket_type if self.bucket is None else f"{self.bucket_type}/{self.bucket}"


@dataclass(frozen=True, slots=True)
class User:
    """A user: how it proves who it is (hashes only), its record API role and its grants."""

    name: str
    role: str | None = None
    token_hash: str | None = field(default=None, repr=False)
    password_hash: str | None = field(default=None, repr=False)
    grants: tuple[Grant, ...] = ()


@dataclass(frozen=True, slots=True)
class Source:
    """Which addresses may prove who they are, and how (Riak's `add-source`).

    `users` is ("all",) or the user names it covers. A `trust` source lets a request
    from `cidr` in without credentials; one that names no user acts as `user`.
    """

    cidr: ipaddress.IPv4Network | ipaddress.IPv6Network
    method: str
    users: tuple[str, ...] = ("all",)
    user: str | None = None


@dataclass(frozen=True, slots=True)
class SecuritySettings:
    """[security]: whether HTTP needs a user, and the limits that keep strangers out."""

    enabled: bool = True
    # Failed authentications a source address may make per window before it gets 429.
    failed_auth_limit: int = 10
    failed_auth_window_s: float = 60.0
    # Internode: a peer must finish its handshake within this, or the socket is closed.
    hello_timeout_ms: int = 5000
    # Sockets on the peer port not yet authenticated; more are closed at once.
    max_unauthenticated_peers: int = 32
    # An authenticated peer link that carries no frame for this long is closed.
    peer_idle_timeout_ms: int = 300_000


@dataclass(frozen=True, slots=True)
class AaeSettings:
    """[aae]: active anti-entropy's Tictac trees and their exchanges."""

    enabled: bool = True
    # How often each primary partition exchanges its tree with a peer's (the exchanges' tick).
    tick_ms: int = 60_000
    # Every tree is rebuilt from a fold this often (with jitter), to catch silent corruption.
    rebuild_days: float = 7.0
    # Exchanges wait while more client requests than this wait for an answer (the backlog).
    pause_backlog: int = 64
    # At most this many keys are repaired by one exchange of one tree.
    max_repairs: int = 1000


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """[tls]: the cluster CA and each node's certificate and key (`{node}` is the node's name)."""

    ca: Path
    cert: str
    key: str
    root: Path

    def cert_for(self, node: str) -> Path:
        return self.root / self.cert.replace("{node}", node)

    def key_for(self, node: str) -> Path:
        return self.root / self.key.replace("{node}", node)


@dataclass(frozen=True, slots=True)
class RecordSettings:
    """The record API's place in the store and the NHS numbers it may allocate."""

    bucket_type: str = "records"
    # Inclusive range new patients' numbers are drawn from; the 999 range is never issued.
    nhs_number_range: tuple[int, int] = (9_990_000_000, 9_999_999_999)


@dataclass(frozen=True, slots=True)
class ReplSource:
    """[[replication.source]]: a queue this cluster keeps for a sink to pull."""

    name: str
    filter: Filter
    max_entries: int = 1_000_000


@dataclass(frozen=True, slots=True)
class ReplSink:
    """[[replication.sink]]: a source cluster's queue this cluster pulls and applies."""

    name: str
    peers: tuple[tuple[str, int], ...]
    queue: str
    workers: int = 8
    # Seconds between scheduled full-syncs; 0: only on demand.
    fullsync_every_s: float = 3600.0
    # What full-sync compares: every type (the any filter), one type, or one bucket.
    scope: Filter = field(default_factory=Filter)
    # The file holding the bearer token of the source's user with the `repl` permission
    # (resolved against the config file's folder); a node refuses to pull without it.
    token_file: Path | None = None


@dataclass(frozen=True, slots=True)
class ReplicationSettings:
    sources: tuple[ReplSource, ...] = ()
    sinks: tuple[ReplSink, ...] = ()


@dataclass(frozen=True)
class ClusterConfig:
    name: str
    ring_size: int
    n_val: int
    nodes: tuple[NodeSpec, ...]
    bucket_defaults: BucketProps
    # The file these settings were read from: messages name it, runtime folders sit beside it.
    path: Path
    bucket_types: dict[str, BucketProps] = field(default_factory=dict)
    # [cluster] nodes_dir as written (relative to the file's folder); None when not set.
    nodes_dir_setting: str | None = None
    max_object_size: int = 5 * 1024 * 1024
    request_timeout_ms: int = 10_000
    users: tuple[User, ...] = ()
    records: RecordSettings = field(default_factory=RecordSettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    sources: tuple[Source, ...] = ()
    tls: TlsSettings | None = None
    aae: AaeSettings = field(default_factory=AaeSettings)
    replication: ReplicationSettings = field(default_factory=ReplicationSettings)
    # [cluster] secret_file as written (relative to the file's folder); None: the default.
    secret_file_setting: str | None = None

    @property
    def secret_file(self) -> Path:
        """The cluster secret: internode handshakes and record MACs are keyed from it.

        By default it sits in the node folders' folder (never tracked), where `spinekv up`
        makes one when it is missing; a cluster spread over hosts copies it to each.
        """
        if self.secret_file_setting is not None:
            return self.root / self.secret_file_setting
        return self.nodes_dir / "cluster.secret"

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    def http_url(self, name: str) -> str:
        spec = self.node(name)
        return f"{self.scheme}://{spec.host}:{spec.http_port}"

    def user(self, name: str) -> User | None:
        for user in self.users:
            if user.name == name:
                return user
        return None

    @property
    def root(self) -> Path:
        """The folder holding the config file; runtime folders live here."""
        return self.path.parent

    @property
    def nodes_dir(self) -> Path:
        """The folder of the per-node folders: [cluster] nodes_dir, else named after the file.

        Two config files in one folder must not share node folders, so only cluster.toml
        gets the plain `nodes`; other.toml gets `nodes-other`.
        """
        default = "nodes" if self.path.name == "cluster.toml" else f"nodes-{self.path.stem}"
        return self.root / (self.nodes_dir_setting or default)

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
        """Props of a bucket type listed in the config file, or None when it is not listed."""
        return self.bucket_types.get(name)

    @property
    def type_defaults(self) -> BucketProps:
        """Where a created type starts: [bucket_defaults] with siblings, as Riak's new types."""
        return type_defaults(self.bucket_defaults)


# ------------------------------------------------------------------ the schema


class _Table(BaseModel):
    # TOML values already carry their types, so nothing is converted: "1" is not 1, nor is 1 true.
    model_config = ConfigDict(extra="forbid", strict=True)


class _ClusterTable(_Table):
    name: str = "spine"
    ring_size: int = 64
    n_val: int = 3
    request_timeout_ms: int = 10_000
    max_object_size: int = 5 * 1024 * 1024
    nodes_dir: str | None = None
    secret_file: str | None = None


class _SecurityTable(_Table):
    enabled: bool = True
    failed_auth_limit: int = 10
    failed_auth_window_s: int | float = 60
    hello_timeout_ms: int = 5000
    max_unauthenticated_peers: int = 32
    peer_idle_timeout_ms: int = 300_000


class _AaeTable(_Table):
    enabled: bool = True
    tick_ms: int = 60_000
    rebuild_days: int | float = 7
    pause_backlog: int = 64
    max_repairs: int = 1000


class _ReplSourceTable(_Table):
    name: str
    filter: str
    max_entries: int = 1_000_000


class _ReplSinkTable(_Table):
    name: str
    peers: list[str]
    queue: str
    workers: int = 8
    fullsync_every_s: int | float = 3600
    scope: str = ANY
    token_file: str | None = None


class _ReplicationTable(_Table):
    source: list[_ReplSourceTable] = Field(default_factory=list)
    sink: list[_ReplSinkTable] = Field(default_factory=list)


class _TlsTable(_Table):
    ca: str
    cert: str
    key: str


class _SourceTable(_Table):
    cidr: str
    method: str
    users: list[str] = Field(default_factory=lambda: ["all"])
    user: str | None = None


class _GrantTable(_Table):
    on: str
    permissions: list[str]


class _NodeTable(_Table):
    name: str
    host: str = "127.0.0.1"
    http_port: int
    peer_port: int
    member: bool = True


class _UserTable(_Table):
    name: str
    role: str | None = None
    token_hash: str | None = None
    password_hash: str | None = None
    # Refused with a pointer to token_hash: plain-text secrets never sit in the file.
    token: str | None = None
    grants: list[_GrantTable] = Field(default_factory=list)


class _RecordsTable(_Table):
    bucket_type: str = "records"
    nhs_number_range: list[str] = Field(default_factory=lambda: ["9990000000", "9999999999"])


class _Document(_Table):
    cluster: _ClusterTable = Field(default_factory=_ClusterTable)
    # Bucket props tables are checked by Riak's coercion (props.py), which knows their names.
    bucket_defaults: dict[str, Any] = Field(default_factory=dict)
    bucket_types: dict[str, dict[str, Any]] = Field(default_factory=dict)
    records: _RecordsTable = Field(default_factory=_RecordsTable)
    security: _SecurityTable = Field(default_factory=_SecurityTable)
    tls: _TlsTable | None = None
    aae: _AaeTable = Field(default_factory=_AaeTable)
    replication: _ReplicationTable = Field(default_factory=_ReplicationTable)
    source: list[_SourceTable] = Field(default_factory=list)
    user: list[_UserTable] = Field(default_factory=list)
    node: list[_NodeTable] = Field(default_factory=list)


_EXPECTED = {
    "int_type": "an integer",
    "bool_type": "true or false",
    "string_type": "a string",
    "list_type": "an array",
    "dict_type": "a table",
    "model_type": "a table",
}


def _place(loc: Sequence[str | int]) -> str:
    """A key's place as the file spells it: cluster.ring_size, node[2].host."""
    place = ""
    for part in loc:
        if isinstance(part, int):
            place += f"[{part}]"
        else:
            place += f".{part}" if place else part
    return place


def _keys_at(loc: Sequence[str | int]) -> list[str]:
    """The keys the schema allows in the table at loc."""
    table: Any = _Document
    for part in loc:
        # An index steps from list[_Table] to its item type; a name into the field's type.
        table = get_args(table)[0] if isinstance(part, int) else table.model_fields[part].annotation
    return list(table.model_fields)


def _hint(word: str, valid: Collection[str]) -> str:
    close = difflib.get_close_matches(word, valid, n=1)
    if close:
        return f" (did you mean {close[0]}?)"
    return f" (expected one of {', '.join(valid)})"


def _schema_problem(error: Mapping[str, Any]) -> str:
    loc, kind = error["loc"], error["type"]
    place = _place(loc)
    if kind == "extra_forbidden":
        return f"unknown key {place}{_hint(str(loc[-1]), _keys_at(loc[:-1]))}"
    if kind == "missing":
        return f"{place} is required"
    if kind == "list_type" and len(loc) == 1:
        return f"{place} must be an array of [[{place}]] tables"
    if kind in _EXPECTED:
        return f"{place} must be {_EXPECTED[kind]}"
    return f"{place}: {error['msg']}"


# ------------------------------------------------------------------ the rules past the schema


def _props(where: str, table: Mapping[str, Any], base: BucketProps, *, typed: bool) -> BucketProps:
    for name in table:
        if name not in PROP_NAMES:
            raise ConfigError(f"unknown bucket property {where}.{name}{_hint(name, PROP_NAMES)}")
    try:
        props = base.updated(table)
    except PropsError as exc:
        name, reason = next(iter(exc.errors.items()))
        raise ConfigError(f"{where}.{name}: {reason}") from None
    for name, reason in props_problems(props, typed=typed).items():
        raise ConfigError(f"{where}.{name}: {reason}")
    return props


def parse_config(data: Mapping[str, Any], path: Path) -> ClusterConfig:
    """Validate a parsed config document read from `path`; ConfigError names the file."""
    try:
        document = _Document.model_validate(data)
    except ValidationError as exc:
        # A misspelt key is the likely cause of a missing one, so unknown keys come first.
        errors = sorted(exc.errors(), key=lambda error: error["type"] != "extra_forbidden")
        problems = "; ".join(_schema_problem(error) for error in errors)
        raise ConfigError(f"{path}: {problems}") from None
    try:
        return _settings(document, path)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _settings(document: _Document, path: Path) -> ClusterConfig:
    cluster = document.cluster
    if cluster.ring_size < 1 or cluster.ring_size & (cluster.ring_size - 1):
        raise ConfigError(f"cluster.ring_size = {cluster.ring_size}: must be a power of two")
    if cluster.n_val < 1:
        raise ConfigError("cluster.n_val must be at least 1")
    if cluster.request_timeout_ms <= 0:
        raise ConfigError("cluster.request_timeout_ms must be positive")
    if cluster.nodes_dir is not None and not cluster.nodes_dir.strip():
        raise ConfigError("cluster.nodes_dir must be a folder name, not empty")
    if cluster.secret_file is not None and not cluster.secret_file.strip():
        raise ConfigError("cluster.secret_file must be a file name, not empty")

    defaults = _props(
        "bucket_defaults", document.bucket_defaults, BucketProps(n_val=cluster.n_val), typed=False
    )
    # Riak's `default` type keeps allow_mult=false; every created type defaults to
    # allow_mult=true, so clients opt into siblings by choosing a type.
    types = {"default": defaults}
    for type_name, table in document.bucket_types.items():
        if type_name == "default":
            raise ConfigError("bucket_types.default is implicit; set [bucket_defaults] instead")
        if "/" in type_name:
            raise ConfigError(f"bucket_types.{type_name}: a type name cannot contain '/'")
        types[type_name] = _props(
            f"bucket_types.{type_name}", table, type_defaults(defaults), typed=True
        )
    return ClusterConfig(
        name=cluster.name,
        ring_size=cluster.ring_size,
        n_val=cluster.n_val,
        nodes=_nodes(document.node),
        bucket_defaults=defaults,
        path=path,
        bucket_types=types,
        nodes_dir_setting=cluster.nodes_dir,
        max_object_size=cluster.max_object_size,
        request_timeout_ms=cluster.request_timeout_ms,
        users=(users := _users(document.user)),
        records=_records(document.records, types),
        security=_security(document.security),
        sources=_sources(document.source, users),
        tls=_tls(document.tls, path.parent),
        aae=_aae(document.aae),
        replication=_replication(document.replication, path.parent),
        secret_file_setting=cluster.secret_file,
    )


def _nodes(tables: list[_NodeTable]) -> tuple[NodeSpec, ...]:
    if not tables:
        raise ConfigError("no [[node]] tables")
    nodes: list[NodeSpec] = []
    for i, table in enumerate(tables):
        where = f"node[{i}]"
        if not table.name or "/" in table.name:
            raise ConfigError(f"{where}.name must be a non-empty string without '/'")
        if any(spec.name == table.name for spec in nodes):
            raise ConfigError(f"node name {table.name!r} appears twice")
        for port_name in ("http_port", "peer_port"):
            if not 0 < getattr(table, port_name) < 65536:
                raise ConfigError(f"{where}.{port_name} must be a port number (1-65535)")
        nodes.append(
            NodeSpec(table.name, table.host, table.http_port, table.peer_port, table.member)
        )
    return tuple(nodes)


def _grant(where: str, table: _GrantTable) -> Grant:
    unknown = [p for p in table.permissions if p not in PERMISSIONS]
    if unknown or not table.permissions:
        raise ConfigError(
            f"{where}.permissions: {', '.join(map(repr, unknown)) or 'none given'}; "
            f"expected some of {', '.join(PERMISSIONS)}"
        )
    if table.on == ANY:
        return Grant(frozenset(table.permissions))
    bucket_type, _, bucket = table.on.partition("/")
    if not bucket_type or "/" in bucket:
        raise ConfigError(f'{where}.on = {table.on!r}: expected "any", "TYPE" or "TYPE/BUCKET"')
    return Grant(frozenset(table.permissions), bucket_type, bucket or None)


def _users(tables: list[_UserTable]) -> tuple[User, ...]:
    users: list[User] = []
    for i, table in enumerate(tables):
        where = f"user[{i}]"
        if not table.name.strip():
            raise ConfigError(f"{where}.name must be a non-empty string")
        if table.token is not None:
            raise ConfigError(
                f"{where}.token: a plain-text token is not allowed; store its hash as "
                f"token_hash (`spinekv admin user hash` prints one)"
            )
        if table.role is not None and table.role not in ROLES:
            raise ConfigError(f"{where}.role = {table.role!r}: expected one of {ROLES}")
        for key in ("token_hash", "password_hash"):
            value = getattr(table, key)
            if value is not None and not is_hashed(value):
                raise ConfigError(
                    f"{where}.{key} is not a scrypt hash (`spinekv admin user hash` prints one)"
                )
        if any(u.name == table.name for u in users):
            raise ConfigError(f"user name {table.name!r} appears twice")
        grants = tuple(
            _grant(f"{where}.grants[{j}]", grant) for j, grant in enumerate(table.grants)
        )
        users.append(User(table.name, table.role, table.token_hash, table.password_hash, grants))
    return tuple(users)


def _aae(table: _AaeTable) -> AaeSettings:
    if table.tick_ms < 1:
        raise ConfigError("aae.tick_ms must be at least 1")
    if table.rebuild_days <= 0:
        raise ConfigError("aae.rebuild_days must be positive")
    if table.pause_backlog < 0:
        raise ConfigError(
            "aae.pause_backlog must be at least 0 (client requests waiting for an answer)"
        )
    if table.max_repairs < 1:
        raise ConfigError("aae.max_repairs must be at least 1 (keys one exchange may repair)")
    return AaeSettings(
        table.enabled,
        table.tick_ms,
        float(table.rebuild_days),
        table.pause_backlog,
        table.max_repairs,
    )


def _queue_name(where: str, name: str) -> None:
    if not QUEUE_NAME.match(name):
        raise ConfigError(f"{where} = {name!r}: a queue name is 1-64 letters, digits, '_' or '-'")


def _replication(table: _ReplicationTable, root: Path) -> ReplicationSettings:
    sources: list[ReplSource] = []
    for i, src in enumerate(table.source):
        where = f"replication.source[{i}]"
        _queue_name(f"{where}.name", src.name)
        if any(s.name == src.name for s in sources):
            raise ConfigError(f"{where}.name: queue {src.name!r} appears twice")
        try:
            queue_filter = parse_filter(src.filter)
        except FilterError as exc:
            raise ConfigError(f"{where}.filter: {exc}") from None
        if src.max_entries < 1:
            raise ConfigError(f"{where}.max_entries must be at least 1")
        sources.append(ReplSource(src.name, queue_filter, src.max_entries))
    sinks: list[ReplSink] = []
    for i, sink in enumerate(table.sink):
        where = f"replication.sink[{i}]"
        if not sink.name.strip():
            raise ConfigError(f"{where}.name must be a non-empty string")
        if any(s.name == sink.name for s in sinks):
            raise ConfigError(f"{where}.name: sink {sink.name!r} appears twice")
        if not sink.peers:
            raise ConfigError(f'{where}.peers must list the source\'s nodes as "host:port"')
        peers = tuple(_peer(f"{where}.peers[{j}]", peer) for j, peer in enumerate(sink.peers))
        _queue_name(f"{where}.queue", sink.queue)
        if sink.workers < 1:
            raise ConfigError(f"{where}.workers must be at least 1")
        if sink.fullsync_every_s < 0:
            raise ConfigError(f"{where}.fullsync_every_s must be 0 (on demand only) or more")
        try:
            scope = parse_filter(sink.scope)
        except FilterError:
            scope = None
        if scope is None or scope.kind == "prefix":
            raise ConfigError(
                f'{where}.scope = {sink.scope!r}: expected "any", "type:T" or "bucket:T/B"'
            )
        if sink.token_file is not None and not sink.token_file.strip():
            raise ConfigError(f"{where}.token_file must be a file name")
        token_file = None if sink.token_file is None else root / sink.token_file
        sinks.append(
            ReplSink(
                sink.name,
                peers,
                sink.queue,
                sink.workers,
                float(sink.fullsync_every_s),
                scope,
                token_file,
            )
        )
    return ReplicationSettings(tuple(sources), tuple(sinks))


def _peer(where: str, text: str) -> tuple[str, int]:
    host, colon, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")  # [::1]:8087
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f'{where} = {text!r}: expected "host:port"')
    return host, int(port)


def _security(table: _SecurityTable) -> SecuritySettings:
    for name in (
        "failed_auth_limit",
        "hello_timeout_ms",
        "max_unauthenticated_peers",
        "peer_idle_timeout_ms",
    ):
        if getattr(table, name) < 1:
            raise ConfigError(f"security.{name} must be at least 1")
    if table.failed_auth_window_s <= 0:
        raise ConfigError("security.failed_auth_window_s must be positive")
    return SecuritySettings(
        table.enabled,
        table.failed_auth_limit,
        float(table.failed_auth_window_s),
        table.hello_timeout_ms,
        table.max_unauthenticated_peers,
        table.peer_idle_timeout_ms,
    )


def _sources(tables: list[_SourceTable], users: tuple[User, ...]) -> tuple[Source, ...]:
    names = {u.name for u in users}
    sources: list[Source] = []
    for i, table in enumerate(tables):
        where = f"source[{i}]"
        try:
            cidr = ipaddress.ip_network(table.cidr)
        except ValueError as exc:
            raise ConfigError(f"{where}.cidr = {table.cidr!r}: {exc}") from None
        if table.method not in SOURCE_METHODS:
            raise ConfigError(
                f"{where}.method = {table.method!r}: expected one of {', '.join(SOURCE_METHODS)}"
            )
        listed = tuple(table.users)
        if not listed or (listed != ("all",) and "all" in listed):
            raise ConfigError(f'{where}.users must be ["all"] or a list of user names')
        for name in (*[n for n in listed if n != "all"], *([table.user] if table.user else [])):
            if name not in names:
                raise ConfigError(f"{where}: no [[user]] named {name!r}")
        if table.user is not None and table.method != "trust":
            raise ConfigError(f"{where}.user is for trust sources only")
        sources.append(Source(cidr, table.method, listed, table.user))
    return tuple(sources)


def _tls(table: _TlsTable | None, root: Path) -> TlsSettings | None:
    if table is None:
        return None
    for name in ("ca", "cert", "key"):
        if not getattr(table, name).strip():
            raise ConfigError(f"tls.{name} must be a file name")
    return TlsSettings(root / table.ca, table.cert, table.key, root)


def _records(table: _RecordsTable, types: Mapping[str, BucketProps]) -> RecordSettings:
    bucket_type = table.bucket_type
    # Named but missing is a mistake; missing by default, the record API answers 503 and
    # says so, and the KV API is unaffected.
    if "bucket_type" in table.model_fields_set and bucket_type not in types:
        raise ConfigError(f"records.bucket_type = {bucket_type!r}: no such [bucket_types] entry")
    if bucket_type in types and not types[bucket_type].allow_mult:
        raise ConfigError(f"records.bucket_type {bucket_type!r} must keep siblings (allow_mult)")
    raw = table.nhs_number_range
    if (
        len(raw) != 2
        or not all(len(x) == 10 and x.isascii() and x.isdigit() for x in raw)
        or raw[0] > raw[1]
    ):
        raise ConfigError('records.nhs_number_range must be ["FIRST", "LAST"], ten digits each')
    return RecordSettings(bucket_type, (int(raw[0]), int(raw[1])))


def load_config(path: str | Path) -> ClusterConfig:
    """Read and validate a config file (cluster.toml or another); runtime folders live beside it."""
    path = Path(path).resolve()
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return parse_config(data, path)
