"""`spinekv admin user`: add, delete, list, grant and revoke users while the cluster runs, and
hash a secret for cluster.toml. Secrets are hashed here; only hashes are sent."""

from __future__ import annotations

import secrets
import sys
import urllib.parse

import click
from rich.table import Table

from ..security.secrets import hash_secret
from .admin import _ask, _fail
from .common import console


@click.group("user")
def user() -> None:
    """Users, their grants and secrets, as riak-admin security does (kept in the gossiped
    cluster metadata, over cluster.toml's [[user]] tables)."""


def _path(name: str, tail: str = "") -> str:
    return "/admin/users/" + urllib.parse.quote(name, safe="") + tail


def _read_secret(what: str) -> str:
    """A secret from a hidden prompt (asked twice), or the first line of stdin when piped."""
    if not sys.stdin.isatty():
        secret = sys.stdin.readline().rstrip("\r\n")
    else:
        secret = click.prompt(what, hide_input=True, confirmation_prompt=True)
    if not secret:
        raise click.ClickException(f"an empty {what.lower()} cannot be used")
    return secret


@user.command("add")
@click.argument("name")
@click.option("--role", default=None, help="Record API role: clinical, admin or service.")
@click.option("--password", "with_password", is_flag=True, help="Also set a password (prompted).")
@click.option("--token", default=None, help="The bearer token to give (default: a random one).")
@click.pass_context
def add(
    ctx: click.Context, name: str, role: str | None, with_password: bool, token: str | None
) -> None:
    """Add user NAME with a bearer token (a random one is made and printed once)."""
    made = token is None
    token = secrets.token_urlsafe(32) if token is None else token
    body = {
        "role": role,
        "token_hash": hash_secret(token),
        "password_hash": hash_secret(_read_secret("Password")) if with_password else None,
    }
    status, answer = _ask(ctx, "POST", _path(name), body)
    if status >= 400:
        _fail(f"Error adding user {name}:", answer)
    click.echo(f"{name} added")
    if made:
        click.echo(f"token: {token}")
        click.echo("(shown once: only its hash is kept)")


@user.command("del")
@click.argument("name")
@click.pass_context
def delete(ctx: click.Context, name: str) -> None:
    """Delete user NAME (a cluster.toml user stays deleted)."""
    status, answer = _ask(ctx, "DELETE", _path(name))
    if status >= 400:
        _fail(f"Error deleting user {name}:", answer)
    click.echo(f"{name} deleted")


@user.command("list")
@click.pass_context
def list_users(ctx: click.Context) -> None:
    """Every user: role, grants, and which secrets are set (never the secrets)."""
    status, answer = _ask(ctx, "GET", "/admin/users")
    if status >= 400:
        _fail("Error listing users:", answer)
    table = Table(title="Users")
    for column in ("name", "role", "grants", "secrets"):
        table.add_column(column)
    for row in answer["users"]:
        grants = "\n".join(f"{','.join(g['permissions'])} on {g['on']}" for g in row["grants"])
        kinds = [kind for kind in ("token", "password") if row[kind]]
        table.add_row(row["name"], row["role"] or "-", grants or "-", ", ".join(kinds) or "-")
    console.print(table)


def _change_grant(ctx: click.Context, verb: str, perms: str, scope: str, name: str) -> None:
    body = {"permissions": [p for p in perms.split(",") if p], "on": scope}
    status, answer = _ask(ctx, "POST", _path(name, f"/{verb}"), body)
    if status >= 400:
        _fail(f"Error: cannot {verb} {perms} on {scope} for {name}:", answer)
    click.echo(f"{verb} {perms} on {scope}: done for {name}")


@user.command("grant")
@click.argument("perms")
@click.argument("on", type=click.Choice(["on"]), metavar="on")
@click.argument("scope")
@click.argument("to", type=click.Choice(["to"]), metavar="to")
@click.argument("name")
@click.pass_context
def grant(ctx: click.Context, perms: str, on: str, scope: str, to: str, name: str) -> None:
    """Grant PERMS (comma-separated) on SCOPE (any, TYPE or TYPE/BUCKET) to NAME."""
    _change_grant(ctx, "grant", perms, scope, name)


@user.command("revoke")
@click.argument("perms")
@click.argument("on", type=click.Choice(["on"]), metavar="on")
@click.argument("scope")
@click.argument("frm", type=click.Choice(["from"]), metavar="from")
@click.argument("name")
@click.pass_context
def revoke(ctx: click.Context, perms: str, on: str, scope: str, frm: str, name: str) -> None:
    """Revoke PERMS on exactly SCOPE from NAME."""
    _change_grant(ctx, "revoke", perms, scope, name)


@user.command("hash")
def hash_command() -> None:
    """Print a scrypt hash of a secret (prompted, or read from stdin) for cluster.toml."""
    click.echo(hash_secret(_read_secret("Secret")))
