"""`spinekv admin tls init`: a local CA and a certificate for every node, and the [tls] table."""

from __future__ import annotations

import os
from pathlib import Path

import click

from ..config import ClusterConfig
from ..security import certs
from ..security.tlsplan import PlanError, TlsPlan, plan, tls_table
from .common import cluster_config, console, shown

CA_DAYS = 3650


@click.group()
def tls() -> None:
    """HTTPS on every node's HTTP port, and mutual TLS between nodes."""


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write `path` with `mode` from its first byte (a key is never readable by others)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as out:
        # A file that was there (--force) keeps its old mode through O_CREAT: set it.
        os.fchmod(out.fileno(), mode)
        out.write(data)


def _issue(found: TlsPlan, days: int) -> None:
    if found.new_ca:
        # The CA outlives what it signs, so a node added in a later year gets its full term.
        signer = certs.ca_certificate(found.ca, certs.new_key(), max(days, CA_DAYS))
        _write(found.ca.key, certs.key_pem(signer.key), 0o600)
        _write(found.ca.cert, certs.cert_pem(signer.cert), 0o644)
    else:
        try:
            signer = certs.load_signer(found.ca.cert.read_bytes(), found.ca.key.read_bytes())
        except ValueError as exc:
            raise click.ClickException(f"{shown(found.ca.cert)}: {exc}") from None
    for request in found.issue:
        key = certs.new_key()
        _write(request.key, certs.key_pem(key), 0o600)
        _write(request.cert, certs.cert_pem(certs.sign(signer, request, key, days)), 0o644)


def _say(text: str) -> None:
    # markup off: "[tls]" is the text, not a style.
    console.print(text, markup=False, highlight=False)


def _report(config: ClusterConfig, found: TlsPlan) -> None:
    if found.new_ca:
        _say(f"made a CA: {shown(found.ca.cert)} (its key: {shown(found.ca.key)})")
    else:
        _say(f"signed with the CA already there: {shown(found.ca.cert)}")
    for request in found.issue:
        names = ", ".join([*request.dns_names, *map(str, request.ip_addresses)])
        _say(f"{request.common_name}: {shown(request.cert)}, {shown(request.key)} ({names})")
    for request in found.kept:
        _say(f"{request.common_name}: kept {shown(request.cert)} (--force makes new ones)")
    first = config.nodes[0]
    _say(
        f"\nPut this table in {shown(config.path)} and restart the nodes "
        "(`spinekv down`, `spinekv up`):\n"
    )
    _say(tls_table(found.folder, config.root))
    _say(
        "Each node's HTTP port then speaks HTTPS only, and the nodes dial each other with "
        "mutual TLS.\n"
        "spinekv's own commands and spinekv.Client.from_config trust the CA by themselves; "
        f"other clients are given {shown(found.ca.cert)}, e.g.\n"
        f"  curl --cacert {shown(found.ca.cert)} https://{first.host}:{first.http_port}/ping\n"
        f"Keep {shown(found.ca.key)} private: whoever holds it can pose as any node. "
        "Running this again after adding a node to the file signs just that node."
    )


@tls.command("init")
@click.option(
    "--dir",
    "folder",
    default="tls",
    show_default=True,
    help="Where the files go, relative to the cluster file's folder.",
)
@click.option(
    "--days",
    default=825,
    show_default=True,
    type=click.IntRange(min=1),
    help="How long the certificates are valid.",
)
@click.option("--force", is_flag=True, help="Make a new CA and every certificate, replacing any.")
@click.pass_context
def init(ctx: click.Context, folder: str, days: int, force: bool) -> None:
    """Make a local CA and, for every node in the cluster file, a key and a certificate it signs
    (CN = the node's name; it answers to the node's host, localhost and 127.0.0.1).

    Keys are written mode 0600; nothing already there is replaced without --force.
    """
    config = cluster_config(ctx)
    where = config.root / folder
    where.mkdir(parents=True, exist_ok=True)
    existing = {path for path in where.iterdir() if path.is_file()}
    try:
        found = plan(config.name, config.nodes, where, existing, force=force)
    except PlanError as exc:
        raise click.ClickException(str(exc)) from None
    _issue(found, days)
    _report(config, found)
