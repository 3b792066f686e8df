"""What every `spinekv` command shares: the console, the --config option and the config loader."""

from __future__ import annotations

import os
from pathlib import Path

import click
from rich.console import Console

from ..config import ClusterConfig, ConfigError, load_config

# soft_wrap: a message naming a long path stays one line, for the eye and for grep.
console = Console(soft_wrap=True)

CONFIG_ENV = "SPINEKV_CONFIG"
DEFAULT_CONFIG = "cluster.toml"
CONFIG_HELP = (
    f"The cluster file to use (default: ${CONFIG_ENV}, else {DEFAULT_CONFIG}). "
    "Accepted before or after the subcommand."
)
# ctx.meta is shared by every context of one invocation, so the root group and the
# subcommand see the same value whichever of them was given --config.
_PATH_KEY = "spinekv.config_path"
_CONFIG_KEY = "spinekv.config"


def _remember_path(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is None:
        return
    earlier = ctx.meta.get(_PATH_KEY)
    if earlier is not None and Path(earlier).resolve() != Path(value).resolve():
        raise click.UsageError(f"--config given twice: {earlier} and {value}")
    ctx.meta[_PATH_KEY] = value


def config_option() -> click.Option:
    """A --config option for one command; its value lands where `cluster_config` looks."""
    return click.Option(
        ["--config"],
        metavar="PATH",
        expose_value=False,
        callback=_remember_path,
        help=CONFIG_HELP,
    )


def add_config_option(command: click.Command) -> None:
    """Give `command` and every command below it a --config option."""
    command.params.append(config_option())
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            add_config_option(sub)


def cluster_config(ctx: click.Context) -> ClusterConfig:
    """The cluster file this invocation names (--config, $SPINEKV_CONFIG or cluster.toml)."""
    if _CONFIG_KEY not in ctx.meta:
        path = ctx.meta.get(_PATH_KEY) or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG
        try:
            ctx.meta[_CONFIG_KEY] = load_config(path)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
    return ctx.meta[_CONFIG_KEY]


def shown(path: Path) -> str:
    """`path` as a user would type it here: relative to the working folder when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def config_name(config: ClusterConfig) -> str:
    return shown(config.path)


def known_names(config: ClusterConfig, names: tuple[str, ...] | list[str]) -> list[str]:
    """`names`, or a UsageError naming those the cluster file lacks."""
    unknown = [n for n in names if n not in config.node_names()]
    if unknown:
        have = ", ".join(config.node_names())
        raise click.BadParameter(
            f"unknown node(s) {', '.join(unknown)}; {config_name(config)} has {have}"
        )
    return list(names)
