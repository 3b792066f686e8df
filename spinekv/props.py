"""Riak bucket properties (pure): the values, Riak's coercion of each, the combinations refused."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

QuorumSpec = int | str
# A commit hook as Riak writes it ({"mod": M, "fun": F} or {"name": N}): its sorted items.
Hook = tuple[tuple[str, str], ...]

QUORUM_NAMES = ("r", "w", "dw", "rw", "pr", "pw", "node_confirms")
# A bucket property cannot say "default": it is what a request's "default" falls back on.
PROP_QUORUMS = ("one", "quorum", "all")
STD_KEYFUN = ("riak_core_util", "chash_std_keyfun")
# Integer props are stored and gossiped as msgpack integers; nothing sensible is larger.
MAX_PROP_INT = 2**32 - 1
DATATYPES = ("map", "set", "counter", "hll", "gset")
# What becomes of a tombstone once every primary holds it (Riak's delete_mode): kept until
# an operator reaps it, reaped at once, or reaped after this many milliseconds.
KEEP, IMMEDIATE = "keep", "immediate"
DeleteMode = int | str


class PropsError(ValueError):
    """Bucket properties that cannot be set; `errors` maps each bad property to its reason."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__("; ".join(self.errors.values()))


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
    delete_mode: DeleteMode = 3000

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


def _delete_mode(name: str, value: Any) -> DeleteMode:
    if isinstance(value, str):
        text = value.strip().lower()
        if text in (KEEP, IMMEDIATE):
            return text
        # Riak clients send the delay as a string as often as a number.
        if text.isascii() and text.isdigit() and len(text) <= 10:
            value = int(text)
    if _int_in(value, 0):
        return value
    raise ValueError(
        f'{name} must be "keep", "immediate" or a delay in milliseconds (0..{MAX_PROP_INT})'
    )


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
    "delete_mode": _delete_mode,
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


def protected_problems(props: BucketProps) -> dict[str, str]:
    """What the record API's bucket types may never be changed to while the cluster runs:
    its concurrent writes need siblings, and its records three replicas."""
    problems: dict[str, str] = {}
    if not props.allow_mult:
        problems["allow_mult"] = "allow_mult must stay true on the record API's bucket type"
    if props.n_val < 3:
        problems["n_val"] = f"n_val={props.n_val}: the record API's bucket type keeps n_val >= 3"
    if props.last_write_wins:
        problems["last_write_wins"] = (
            "last_write_wins must stay false on the record API's bucket type"
        )
    return problems


def type_defaults(defaults: BucketProps) -> BucketProps:
    # Riak's created types have allow_mult and dvv_enabled on; dvv_enabled stays off where
    # the defaults ask for last_write_wins, which Riak refuses alongside it.
    return replace(defaults, allow_mult=True, dvv_enabled=not defaults.last_write_wins)
