"""`spinekv admin reap`: reap the tombstones a fold finds, with a live progress bar."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..config import ClusterConfig
from .admin import _answer, _contact, _ctx, admin
from .common import console
from .folds import FOLD_WAIT, _where

# The node's fold may run ten minutes before the first line; later lines come every half second.
LINE_WAIT = FOLD_WAIT


def _lines(config: ClusterConfig, node: str, path: str) -> Iterator[dict[str, Any]]:
    """The NDJSON lines of a POST to `node`, each as it arrives."""
    with _answer(config, node, "POST", path, LINE_WAIT) as resp:
        for line in resp:
            if line.strip():
                yield json.loads(line)


def _path(**params: str | int | None) -> str:
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    return "/admin/reap" + (f"?{query}" if query else "")


@admin.command("reap")
@click.option("--type", "bucket_type", default=None, help="Only this bucket type.")
@click.option("--bucket", default=None, help="Only this bucket (of --type, else of default).")
@click.option(
    "--older-than",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Only tombstones last changed at least SECONDS ago.",
)
@click.option(
    "--rate",
    type=click.IntRange(min=1),
    default=2000,
    show_default=True,
    help="Keys reaped per second.",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Print the totals as JSON.")
@click.pass_context
def reap(
    ctx: click.Context,
    bucket_type: str | None,
    bucket: str | None,
    older_than: int,
    rate: int,
    yes: bool,
    as_json: bool,
) -> None:
    """Remove tombstones that every primary holds alike (those of delete_mode keep, or not
    yet reaped); a tombstone with a primary down is deferred, and reaped by a later run."""
    config, chosen = _ctx(ctx)
    contact = _contact(config, chosen)
    scope = {"type": bucket_type, "bucket": bucket, "older_than": older_than or None}
    what = _where(bucket_type, bucket)
    if not yes:
        counted = list(_lines(config, contact, _path(**scope, dry_run="true")))
        click.confirm(f"Reap up to {counted[0]['found']:,} tombstones in {what}?", abort=True)
    progress = Progress(
        TextColumn("[bold]reaping[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[reaped]:,} reaped, {task.fields[deferred]:,} deferred"),
        TimeElapsedColumn(),
        console=console,
        disable=as_json,
    )
    final: dict[str, Any] = {}
    with progress:
        task = progress.add_task("reap", total=None, reaped=0, deferred=0)
        for line in _lines(config, contact, _path(**scope, rate=rate)):
            if "done" not in line:  # the fold's count, before any reap
                progress.update(task, total=line["found"])
                continue
            progress.update(
                task, completed=line["done"], reaped=line["reaped"], deferred=line["deferred"]
            )
            final = line
    if as_json:
        click.echo(json.dumps(final, indent=2))
        return
    console.print(
        f"Found {final['found']:,} tombstones in {what}: reaped {final['reaped']:,}, "
        f"deferred {final['deferred']:,} ({final['not_tombstone']:,} written again, "
        f"{final['gone']:,} already gone)."
    )
    for reason, count in final["deferred_reasons"].items():
        console.print(f"  deferred {count:,}: {reason}")
