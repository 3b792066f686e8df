"""Bucket properties and bucket types (pure): cluster-wide metadata, its merge, and Riak's rules.

Every node holds one BucketMeta and gossips it with the ring (membership.py).
It is a map of entries, each written by one node and stamped with that
node's clock; `merge` keeps, per key, the entry with the larger (stamp,
node), so it is a join (commutative, associative, idempotent) and any order
of exchanges converges. A node stamps a change past the entry it replaces,
so its own changes always win over what it already knew, even with a slow
clock. The keys:

- (TYPE, T, "") -> {"props": every prop, "active": bool, "claimant": node}:
  a bucket type made with `create` (or a type of cluster.toml that was
  updated). As in Riak, a created type is inactive, and unknown to the data
  path, until `activate`; that is allowed only once every ring member has
  seen the version created, so no node ever uses other props for it.
- (SEEN, T, node) -> [stamp, writer]: the version of type T that `node` holds.
  Each node writes only its own (`acknowledge`); they travel with the rest.
- (BUCKET, T, B) -> {prop: value} or None: the props bucket B of type T sets
  over its type's, in Riak's JSON form; None once reset (DELETE).
- (USER, "", NAME) -> a user (role, secret hashes, grants) or None once deleted;
  security/users.py reads and writes these, over cluster.toml's [[user]] tables.

The record API's bucket type is protected: whoever asks, its props (type and
bucket level) cannot be changed to what the record layer cannot work with.

A bucket's effective props are its type's layered with its own. The
`default` type's props are [bucket_defaults] of cluster.toml, and the types
listed there under [bucket_types] exist and are active from the start.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import msgpack

from .config import ClusterConfig
from .props import BucketProps, PropsError, coerce_props, props_problems, protected_problems

TYPE = "type"
SEEN = "seen"
BUCKET = "bucket"
USER = "user"
KINDS = (TYPE, SEEN, BUCKET, USER)

DEFAULT_TYPE = "default"

# Riak's four states of a bucket type (riak_core_bucket_type:status/1).
UNDEFINED = "undefined"
CREATED = "created"  # not yet seen by every member
READY = "ready"  # seen by every member; may be activated
ACTIVE = "active"

# Shown by GET but not settable; a PUT may send them back unchanged (a GET's body, edited).
READ_ONLY = ("name", "bucket_type", "active", "claimant")
# Fixed when a type is created (riak_kv_bucket: datatype, write_once and consistent types).
IMMUTABLE = ("datatype", "write_once", "consistent")

Key = tuple[str, str, str]


class BucketTypeError(ValueError):
    """A bucket-type or bucket operation the metadata does not allow; its message says why."""


class UnknownBucketType(BucketTypeError):
    """The type named does not exist (or, for bucket props, is not active)."""


class BucketTypeConflict(BucketTypeError):
    """The type is not in a state that allows the change (already active, not yet seen...)."""


class BadBucketChange(BucketTypeError):
    """A change no state of the type would allow: a bad name, the default type's props."""


@dataclass(frozen=True)
class Entry:
    stamp: int  # microseconds on the writer's clock
    node: str  # the writer; orders entries with equal stamps
    value: Any  # msgpack- and JSON-able

    def newer_than(self, other: Entry) -> bool:
        if (self.stamp, self.node) != (other.stamp, other.node):
            return (self.stamp, self.node) > (other.stamp, other.node)
        # One writer never stamps two values alike; compare values anyway, so merge stays a join.
        return _canonical(self.value) > _canonical(other.value)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


class BucketMeta:
    """An immutable map of (kind, type, name) -> Entry; see the module docstring."""

    __slots__ = ("_entries",)

    def __init__(self, entries: Mapping[Key, Entry] | None = None) -> None:
        self._entries: dict[Key, Entry] = dict(entries or {})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BucketMeta) and self._entries == other._entries

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"BucketMeta({len(self._entries)} entries, digest {self.digest})"

    @property
    def entries(self) -> Mapping[Key, Entry]:
        return self._entries

    def get(self, kind: str, type_name: str, name: str = "") -> Entry | None:
        return self._entries.get((kind, type_name, name))

    def merge(self, other: BucketMeta) -> BucketMeta:
        """The join of two states: per key, the newer entry."""
        merged = dict(self._entries)
        for key, entry in other._entries.items():
            mine = merged.get(key)
            if mine is None or entry.newer_than(mine):
                merged[key] = entry
        return BucketMeta(merged)

    def put(self, key: Key, value: Any, now_us: int, node: str) -> BucketMeta:
        """This state with `key` set by `node`, stamped after the entry it replaces."""
        old = self._entries.get(key)
        stamp = now_us if old is None else max(now_us, old.stamp + 1)
        return BucketMeta({**self._entries, key: Entry(stamp, node, value)})

    @property
    def digest(self) -> str:
        """Equal on two nodes exactly when they hold the same metadata."""
        return hashlib.blake2b(encode(self), digest_size=8).hexdigest()


# ------------------------------------------------------------------ codec


def encode(meta: BucketMeta) -> bytes:
    rows = [[*key, e.stamp, e.node, e.value] for key, e in sorted(meta.entries.items())]
    return msgpack.packb([1, rows])


def decode(raw: bytes) -> BucketMeta:
    """The state `encode` wrote; ValueError for anything else, whatever its shape."""
    try:
        version, rows = msgpack.unpackb(raw)
        if version != 1:
            raise ValueError("not version-1 bucket metadata")
        entries = {}
        for kind, type_name, name, stamp, node, value in rows:
            key = (kind, type_name, name)
            if kind not in KINDS or not all(isinstance(part, str) for part in key):
                raise ValueError(f"bad key {key!r}")
            if not isinstance(stamp, int) or isinstance(stamp, bool) or not isinstance(node, str):
                raise ValueError(f"bad stamp of {key!r}")
            _check_value(kind, value)
            entries[key] = Entry(stamp, node, value)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise ValueError(f"malformed bucket metadata: {exc}") from None
    return BucketMeta(entries)


def _check_value(kind: str, value: Any) -> None:
    if kind == TYPE:
        ok = (
            isinstance(value, dict)
            and isinstance(value.get("props"), dict)
            and isinstance(value.get("active"), bool)
            and isinstance(value.get("claimant"), str | None)
        )
    elif kind == SEEN:
        ok = isinstance(value, list) and len(value) == 2
    elif kind == USER:
        ok = value is None or (isinstance(value, dict) and isinstance(value.get("grants"), list))
    else:
        ok = value is None or isinstance(value, dict)
    if not ok:
        raise ValueError(f"bad {kind} entry {value!r}")


# ------------------------------------------------------------------ reading


def _from_json(base: BucketProps, stored: Mapping[str, Any]) -> BucketProps:
    """Props stored in the metadata, over `base`. Everything stored was validated by its
    writer; a prop this node does not know (a newer peer's) is left out, not fatal."""
    try:
        return base.updated(stored)
    except PropsError as exc:
        return base.updated({k: v for k, v in stored.items() if k not in exc.errors})


def type_entry(meta: BucketMeta, name: str) -> Entry | None:
    return meta.get(TYPE, name)


def type_props(
    config: ClusterConfig, meta: BucketMeta, name: str, *, active_only: bool = True
) -> BucketProps | None:
    """A type's props; None when it does not exist (or, with `active_only`, is not active)."""
    if name == DEFAULT_TYPE:
        return config.bucket_defaults
    entry = type_entry(meta, name)
    if entry is None:
        return config.bucket_type(name)
    if active_only and not entry.value["active"]:
        return None
    return _from_json(config.type_defaults, entry.value["props"])


def bucket_overrides(meta: BucketMeta, type_name: str, bucket: str) -> dict[str, Any]:
    entry = meta.get(BUCKET, type_name, bucket)
    return {} if entry is None or entry.value is None else dict(entry.value)


def effective_props(
    config: ClusterConfig, meta: BucketMeta, type_name: str, bucket: str
) -> BucketProps | None:
    """What the data path uses for (type, bucket); None for an unknown or inactive type."""
    base = type_props(config, meta, type_name)
    if base is None:
        return None
    overrides = bucket_overrides(meta, type_name, bucket)
    return _from_json(base, overrides) if overrides else base


def unacknowledged(meta: BucketMeta, name: str, members: Iterable[str]) -> list[str]:
    """Members that do not yet hold the current version of created type `name`."""
    entry = type_entry(meta, name)
    if entry is None:
        return sorted(members)
    version = [entry.stamp, entry.node]
    return sorted(m for m in members if _seen(meta, name, m) != version)


def _seen(meta: BucketMeta, name: str, node: str) -> Any:
    seen = meta.get(SEEN, name, node)
    return None if seen is None else seen.value


def type_status(config: ClusterConfig, meta: BucketMeta, name: str, members: Iterable[str]) -> str:
    if name == DEFAULT_TYPE:
        return ACTIVE
    entry = type_entry(meta, name)
    if entry is None:
        return ACTIVE if config.bucket_type(name) is not None else UNDEFINED
    if entry.value["active"]:
        return ACTIVE
    return CREATED if unacknowledged(meta, name, members) else READY


def type_names(config: ClusterConfig, meta: BucketMeta) -> list[str]:
    """Every type that exists, `default` first."""
    created = {key[1] for key in meta.entries if key[0] == TYPE}
    return [DEFAULT_TYPE, *sorted((set(config.bucket_types) | created) - {DEFAULT_TYPE})]


def claimant(meta: BucketMeta, name: str) -> str | None:
    entry = type_entry(meta, name)
    return None if entry is None else entry.value["claimant"]


def render_bucket(
    meta: BucketMeta, type_name: str, bucket: str, props: BucketProps
) -> dict[str, Any]:
    """GET /buckets/B/props as Riak answers it: the name, and for a typed bucket its type."""
    out: dict[str, Any] = {"name": bucket, **props.to_json()}
    if type_name != DEFAULT_TYPE:
        out.update(_type_extras(meta, type_name, active=True))
        out["bucket_type"] = type_name
    return out


def render_type(meta: BucketMeta, name: str, props: BucketProps) -> dict[str, Any]:
    """GET /types/T/props: the type's props, and for a non-default type active and claimant."""
    out = props.to_json()
    if name != DEFAULT_TYPE:
        entry = type_entry(meta, name)
        out.update(_type_extras(meta, name, active=entry is None or entry.value["active"]))
    return out


def _type_extras(meta: BucketMeta, name: str, *, active: bool) -> dict[str, Any]:
    who = claimant(meta, name)
    return {"active": active, **({"claimant": who} if who is not None else {})}


# ------------------------------------------------------------------ changes


def _check_read_only(changes: Mapping[str, Any], shown: Mapping[str, Any]) -> dict[str, Any]:
    """`changes` without the read-only props, which may only repeat what GET shows."""
    errors = {
        name: f"{name} is read-only"
        for name in READ_ONLY
        if name in changes and changes[name] != shown.get(name)
    }
    if errors:
        raise PropsError(errors)
    return {k: v for k, v in changes.items() if k not in READ_ONLY}


def _validated(
    current: BucketProps, changes: Mapping[str, Any], *, typed: bool, protected: bool
) -> BucketProps:
    """`current` with `changes`, as an update (a bucket's or an active type's) may make them;
    `protected` for the record API's bucket type."""
    try:
        new = current.updated(changes)
        errors: dict[str, str] = {}
    except PropsError as exc:
        new, errors = current, exc.errors
    for name in IMMUTABLE:
        if name in changes and name not in errors:
            value = coerce_props({name: changes[name]})[name]  # valid: it is not in errors
            if value != getattr(current, name):
                errors[name] = f"{name} cannot be changed once the bucket type is created"
    if errors:
        raise PropsError(errors)
    problems = props_problems(new, typed=typed)
    if protected:
        problems.update(protected_problems(new))
    if problems:
        raise PropsError(problems)
    return new


def _existing_type(config: ClusterConfig, meta: BucketMeta, type_name: str) -> BucketProps:
    props = type_props(config, meta, type_name)
    if props is None:
        raise UnknownBucketType(f"unknown bucket type {type_name!r}")
    return props


def set_bucket_props(
    config: ClusterConfig,
    meta: BucketMeta,
    type_name: str,
    bucket: str,
    changes: Mapping[str, Any],
    now_us: int,
    me: str,
) -> BucketMeta:
    """PUT /types/T/buckets/B/props: validate every change, then keep them over the type's."""
    check_name("bucket", bucket)
    current = effective_props(config, meta, type_name, bucket)
    if current is None:
        raise UnknownBucketType(f"unknown bucket type {type_name!r}")
    shown = render_bucket(meta, type_name, bucket, current)
    settable = _check_read_only(changes, shown)
    new = _validated(
        current,
        settable,
        typed=type_name != DEFAULT_TYPE,
        protected=type_name == config.records.bucket_type,
    )
    if not settable:
        return meta  # a GET's body sent back unchanged: nothing to store or gossip
    stored = {**bucket_overrides(meta, type_name, bucket), **new.to_json(settable)}
    # A prop that went back to null (search_index, backend) is not shown, so not kept either.
    stored.update({name: None for name in settable if getattr(new, name) is None})
    return meta.put((BUCKET, type_name, bucket), stored, now_us, me)


def reset_bucket_props(
    config: ClusterConfig, meta: BucketMeta, type_name: str, bucket: str, now_us: int, me: str
) -> BucketMeta:
    """DELETE /types/T/buckets/B/props: the bucket goes back to its type's props."""
    _existing_type(config, meta, type_name)
    if meta.get(BUCKET, type_name, bucket) is None:
        return meta  # never set: nothing to reset, nothing to gossip
    return meta.put((BUCKET, type_name, bucket), None, now_us, me)


def check_name(what: str, name: str) -> None:
    """Type and bucket names are stored and gossiped as UTF-8 strings."""
    try:
        size = len(name.encode())
    except UnicodeEncodeError:
        size = 0
    if not 0 < size <= 65535 or (what == "bucket type" and ("/" in name or not name.isprintable())):
        raise BadBucketChange(f"{name!r} is not a valid {what} name")


def create_type(
    config: ClusterConfig,
    meta: BucketMeta,
    name: str,
    changes: Mapping[str, Any],
    now_us: int,
    me: str,
) -> BucketMeta:
    """`bucket-type create`: a new inactive type, or a new version of one not yet active."""
    check_name("bucket type", name)
    if name == DEFAULT_TYPE:
        raise BucketTypeConflict("the default type always exists; set [bucket_defaults]")
    if type_props(config, meta, name) is not None:
        raise BucketTypeConflict(f"{name} is already active")
    # Riak overwrites these on create, so a copied GET body is fine.
    settable = {k: v for k, v in changes.items() if k not in READ_ONLY}
    props = config.type_defaults.updated(settable)
    problems = props_problems(props, typed=True)
    if name == config.records.bucket_type:
        problems.update(protected_problems(props))
    if problems:
        raise PropsError(problems)
    value = {"props": props.to_json(), "active": False, "claimant": me}
    return acknowledge(meta.put((TYPE, name, ""), value, now_us, me), me, now_us)


def activate_type(
    config: ClusterConfig, meta: BucketMeta, name: str, members: Iterable[str], now_us: int, me: str
) -> BucketMeta:
    """`bucket-type activate`: allowed once every member holds the created version."""
    members = list(members)
    status = type_status(config, meta, name, members)
    if status == UNDEFINED:
        raise UnknownBucketType(f"{name} is not an existing bucket type")
    if status == ACTIVE:
        return meta
    if status == CREATED:
        waiting = ", ".join(unacknowledged(meta, name, members))
        raise BucketTypeConflict(
            f"{name} has been created but cannot be activated yet: "
            f"not yet seen by {waiting} (a member that is down must come back first)",
        )
    entry = type_entry(meta, name)
    assert entry is not None
    return meta.put((TYPE, name, ""), {**entry.value, "active": True}, now_us, me)


def update_type(
    config: ClusterConfig,
    meta: BucketMeta,
    name: str,
    changes: Mapping[str, Any],
    now_us: int,
    me: str,
) -> BucketMeta:
    """`bucket-type update` and PUT /types/T/props: change some props of an active type."""
    if name == DEFAULT_TYPE:
        raise BadBucketChange(
            "the default type's props come from [bucket_defaults] in cluster.toml"
        )
    current = type_props(config, meta, name)
    if current is None:
        if type_entry(meta, name) is None:
            raise UnknownBucketType(f"{name} is not an existing bucket type")
        raise BucketTypeConflict(f"{name} is not active; activate it first")
    settable = _check_read_only(changes, render_type(meta, name, current))
    new = _validated(current, settable, typed=True, protected=name == config.records.bucket_type)
    value = {"props": new.to_json(), "active": True, "claimant": claimant(meta, name)}
    return meta.put((TYPE, name, ""), value, now_us, me)


def acknowledge(meta: BucketMeta, me: str, now_us: int) -> BucketMeta:
    """Record that `me` holds the current version of every type not yet active."""
    for (kind, name, _), entry in list(meta.entries.items()):
        if kind != TYPE or entry.value["active"]:
            continue
        version = [entry.stamp, entry.node]
        if _seen(meta, name, me) != version:
            meta = meta.put((SEEN, name, me), version, now_us, me)
    return meta


# ------------------------------------------------------------------ the resolver


class Resolver:
    """(type, bucket) -> effective props for the node's current metadata, memoised until it
    changes (the data path asks on every request; the metadata changes rarely)."""

    MEMO_LIMIT = 10_000

    def __init__(self, config: ClusterConfig, current: Callable[[], BucketMeta]) -> None:
        self._config = config
        self._current = current
        self._meta: BucketMeta | None = None
        self._memo: dict[tuple[str, str], BucketProps | None] = {}

    def __call__(self, type_name: str, bucket: str) -> BucketProps | None:
        meta = self._current()
        if meta is not self._meta or len(self._memo) > self.MEMO_LIMIT:
            self._meta = meta
            self._memo = {}
        key = (type_name, bucket)
        if key not in self._memo:
            self._memo[key] = effective_props(self._config, meta, type_name, bucket)
        return self._memo[key]
