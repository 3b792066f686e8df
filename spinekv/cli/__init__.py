"""The `spinekv` command line: the root group, with every subcommand hung on it."""

from __future__ import annotations

import click

from .aae import aae_status  # noqa: F401  (hangs `admin aae-status` on the admin group)
from .admin import admin
from .audit import audit  # noqa: F401  (hangs `admin audit` on the admin group)
from .cluster import down, node_command, status, up
from .common import add_config_option
from .folds import fold  # noqa: F401  (hangs `admin fold` on the admin group)
from .reap import reap  # noqa: F401  (hangs `admin reap` on the admin group)
from .records import load_demo, trace_command
from .tls import tls
from .users import user

__all__ = ["main"]


@click.group()
def main() -> None:
    """spinekv: a Riak-style Dynamo key-value store. Run and inspect the local cluster."""


admin.add_command(tls)
admin.add_command(user)
for _command in (up, down, status, admin, load_demo, trace_command, node_command):
    main.add_command(_command)
# Every command and group, the root included, takes --config, so it may come before or
# after the subcommand (a subcommand imported on its own has it too: importing it runs this).
add_config_option(main)
