"""What `spinekv admin tls init` issues: the CA, each node's names, the files it writes or keeps.

Pure: it decides from the nodes and the files already there; security/certs.py makes the
keys and certificates, and the command writes them.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..config import NodeSpec

__all__ = ["Issue", "PlanError", "TlsPlan", "alt_names", "plan", "tls_table"]

# A client on the node's own machine dials one of these; every node certificate names them.
LOCAL_NAMES = ("localhost", "127.0.0.1")
CA_FILES = ("ca.crt", "ca.key")


class PlanError(ValueError):
    """The files already there cannot be completed without replacing some (--force)."""


@dataclass(frozen=True, slots=True)
class Issue:
    """One certificate and its key: whose (the CN), the names it answers to, where it goes."""

    common_name: str
    cert: Path
    key: Path
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...] = ()


@dataclass(frozen=True, slots=True)
class TlsPlan:
    """The CA (made anew, or the one in the folder signs), and which node files to make or keep."""

    folder: Path
    ca: Issue
    new_ca: bool
    issue: tuple[Issue, ...]
    kept: tuple[Issue, ...]


def alt_names(
    host: str,
) -> tuple[tuple[str, ...], tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]]:
    """(DNS names, IP addresses) a node bound to `host` answers to: its host and loopback.

    An unspecified address (0.0.0.0, ::) is where a node listens, never what a client
    dials, so it names nothing.
    """
    dns: list[str] = []
    ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for name in (host, *LOCAL_NAMES):
        try:
            ip = ipaddress.ip_address(name)
        except ValueError:
            if name.lower() not in dns:
                dns.append(name.lower())
            continue
        if not ip.is_unspecified and ip not in ips:
            ips.append(ip)
    return tuple(dns), tuple(ips)


def _node_issue(folder: Path, spec: NodeSpec) -> Issue:
    dns, ips = alt_names(spec.host)
    return Issue(spec.name, folder / f"{spec.name}.crt", folder / f"{spec.name}.key", dns, ips)


def _ca_issue(folder: Path, cluster: str) -> Issue:
    cert, key = (folder / name for name in CA_FILES)
    return Issue(f"spinekv {cluster} CA", cert, key)


def plan(
    cluster: str,
    nodes: Sequence[NodeSpec],
    folder: Path,
    existing: Collection[Path],
    *,
    force: bool = False,
) -> TlsPlan:
    """What to write into `folder`, given the `existing` files there.

    Nothing is replaced without `force`: a CA whose certificate and key are both there
    signs the nodes that lack both of theirs, and nodes that have both keep them (so a
    node added to the file later gets its certificate from the same CA). Half a pair,
    or node files without the CA that signed them, is a PlanError naming the file.
    With `force`, a new CA signs every node.
    """
    ca = _ca_issue(folder, cluster)
    requests = [_node_issue(folder, spec) for spec in nodes]
    if force:
        return TlsPlan(folder, ca, True, tuple(requests), ())
    for pair in (ca, *requests):
        present = [p for p in (pair.cert, pair.key) if p in existing]
        if len(present) == 1:
            raise PlanError(
                f"{present[0]} is there without its pair; move it away, or --force to "
                "make a new CA and every certificate"
            )
    new_ca = ca.cert not in existing
    kept = [r for r in requests if r.cert in existing]
    if new_ca and kept:
        raise PlanError(
            f"{kept[0].cert} is there but the CA that signed it is not; --force makes a new CA "
            "and every certificate"
        )
    issue = [r for r in requests if r not in kept]
    return TlsPlan(folder, ca, new_ca, tuple(issue), tuple(kept))


def _shown(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def tls_table(folder: Path, root: Path) -> str:
    """The [tls] table for a cluster file in `root` whose certificates are in `folder`."""
    ca = _shown(folder / CA_FILES[0], root)
    nodes = _shown(folder / "{node}", root)
    lines = [
        "[tls]",
        f"ca = {json.dumps(ca)}",
        f"cert = {json.dumps(nodes + '.crt')}",
        f"key = {json.dumps(nodes + '.key')}",
    ]
    return "\n".join(lines) + "\n"
