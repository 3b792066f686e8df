"""`spinekv admin fold`: operator folds over the keystore (object stats, find keys, erase)."""

from __future__ import annotations

import json
import urllib.parse

import click
from rich.table import Table

from .admin import _call, _contact, _ctx, admin
from .common import console

# The node gives a fold ten minutes (http/folds.py); wait a little longer for its answer.
FOLD_WAIT = 660.0
# An erase deletes at --rate keys/s after its fold: wait for that too.
ERASE_WAIT = 24 * 3600.0


def _path(what: str, **params: str | int | None) -> str:
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    return f"/admin/fold/{what}" + (f"?{query}" if query else "")


def _where(bucket_type: str | None, bucket: str | None) -> str:
    if bucket is not None:
        return f"bucket {bucket_type or 'default'}/{bucket}"
    return f"bucket type {bucket_type}" if bucket_type else "every bucket"


@admin.group("fold")
def fold() -> None:
    """Folds over every object in the cluster (each partition answers once), paced."""


_type_option = click.option("--type", "bucket_type", default=None, help="Only this bucket type.")
_bucket_option = click.option(
    "--bucket", default=None, help="Only this bucket (of --type, else of default)."
)


@fold.command("object-stats")
@_type_option
@_bucket_option
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
@click.pass_context
def object_stats(
    ctx: click.Context, bucket_type: str | None, bucket: str | None, as_json: bool
) -> None:
    """Count, total and largest size, siblings and tombstones of the stored objects."""
    config, chosen = _ctx(ctx)
    path = _path("object-stats", type=bucket_type, bucket=bucket)
    stats = _call(config, _contact(config, chosen), "GET", path, FOLD_WAIT)
    if as_json:
        click.echo(json.dumps(stats, indent=2))
        return
    table = Table(title=f"Objects in {_where(bucket_type, bucket)}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("objects", f"{stats['count']:,}")
    table.add_row("tombstones", f"{stats['tombstones']:,}")
    table.add_row("total bytes", f"{stats['total_bytes']:,}")
    table.add_row("largest bytes", f"{stats['largest_bytes']:,}")
    console.print(table)
    histogram = Table(title="Sibling counts")
    histogram.add_column("siblings", justify="right")
    histogram.add_column("objects", justify="right")
    for siblings, objects in stats["siblings"].items():
        histogram.add_row(siblings, f"{objects:,}")
    console.print(histogram)


@fold.command("find-keys")
@click.option("--siblings", type=click.IntRange(min=0), help="Keys with more siblings than N.")
@click.option("--size", type=click.IntRange(min=0), help="Keys larger than BYTES.")
@_type_option
@_bucket_option
@click.pass_context
def find_keys(
    ctx: click.Context,
    siblings: int | None,
    size: int | None,
    bucket_type: str | None,
    bucket: str | None,
) -> None:
    """The keys over a threshold: --siblings N or --size BYTES."""
    if (siblings is None) == (size is None):
        raise click.UsageError("give exactly one of --siblings N or --size BYTES")
    config, chosen = _ctx(ctx)
    path = _path("find-keys", type=bucket_type, bucket=bucket, siblings=siblings, size=size)
    found = _call(config, _contact(config, chosen), "GET", path, FOLD_WAIT)["keys"]
    over = f"more than {siblings} siblings" if siblings is not None else f"over {size:,} bytes"
    table = Table(title=f"{len(found)} keys with {over} in {_where(bucket_type, bucket)}")
    for column in ("type", "bucket", "key", "siblings", "bytes"):
        table.add_column(column, justify="right" if column in ("siblings", "bytes") else "left")
    for k in found:
        table.add_row(k["type"], k["bucket"], k["key"], str(k["siblings"]), f"{k['size']:,}")
    console.print(table)


@fold.command("erase")
@_type_option
@click.option("--bucket", required=True, help="The bucket to erase keys of.")
@click.option("--prefix", default=None, help="Only keys starting with this.")
@click.option(
    "--rate",
    type=click.IntRange(min=1),
    default=500,
    show_default=True,
    help="Keys deleted per second.",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def erase(
    ctx: click.Context,
    bucket_type: str | None,
    bucket: str,
    prefix: str | None,
    rate: int,
    yes: bool,
) -> None:
    """Delete (write tombstones for) the keys of a bucket, replicated as a client delete."""
    config, chosen = _ctx(ctx)
    contact = _contact(config, chosen)
    params = {"type": bucket_type, "bucket": bucket, "prefix": prefix}
    what = _where(bucket_type, bucket) + (f" starting with {prefix!r}" if prefix else "")
    found = _call(config, contact, "POST", _path("erase", **params, dry_run="true"), FOLD_WAIT)
    if not found["found"]:
        console.print(f"No keys to erase in {what}.")
        return
    if not yes:
        click.confirm(f"Erase {found['found']:,} keys in {what}?", abort=True)
    done = _call(config, contact, "POST", _path("erase", **params, rate=rate), ERASE_WAIT)
    console.print(
        f"Erased {done['erased']:,} of {done['found']:,} keys in {what} "
        f"({done['already_gone']:,} already gone, {len(done['failed']):,} failed)."
    )
    for failure in done["failed"]:
        console.print(f"[red]{failure['key']}: {failure['reason']}[/red]")
    if done["failed"]:
        raise SystemExit(1)
