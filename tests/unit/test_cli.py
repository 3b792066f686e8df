"""The command line without a running cluster: --config placement, messages naming the file
in use, and which nodes a plain `up` would start."""

from __future__ import annotations

from dataclasses import replace

import pytest
from click.testing import CliRunner

from spinekv import ringstate
from spinekv.cli import main
from spinekv.cli.members import ring_members
from spinekv.config import load_config
from spinekv.node.membership import RING_META
from spinekv.storage.leveldb import LevelDBBackend
from tests.support import write_cluster_toml


@pytest.fixture
def other_toml(tmp_path, monkeypatch):
    """A cluster file not called cluster.toml, in the working folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SPINEKV_CONFIG", raising=False)
    return write_cluster_toml(tmp_path, 3).rename(tmp_path / "other.toml")


@pytest.mark.parametrize(
    "args",
    [
        ["--config", "other.toml", "down", "n9"],
        ["down", "n9", "--config", "other.toml"],
        ["down", "--config", "other.toml", "n9"],
    ],
)
def test_config_is_taken_before_or_after_the_subcommand(other_toml, args):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert "unknown node(s) n9; other.toml has n1, n2, n3" in result.output


def test_config_comes_from_the_environment(other_toml):
    result = CliRunner().invoke(main, ["down", "n9"], env={"SPINEKV_CONFIG": "other.toml"})
    assert "other.toml has n1, n2, n3" in result.output


def test_two_different_configs_are_refused(other_toml):
    result = CliRunner().invoke(main, ["--config", "other.toml", "down", "--config", "x.toml"])
    assert result.exit_code == 2
    assert "--config given twice: other.toml and x.toml" in result.output


def test_admin_names_the_file_in_use(other_toml):
    result = CliRunner().invoke(main, ["admin", "leave", "n9", "--config", "other.toml"])
    assert result.exit_code == 1
    assert "n9 is not a node in other.toml (it has n1, n2, n3)" in result.output


def test_a_missing_config_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SPINEKV_CONFIG", raising=False)
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code == 1
    assert f"{tmp_path / 'cluster.toml'}: not found" in result.output


def _persist(config, name: str, state: ringstate.RingState) -> None:
    backend = LevelDBBackend(config.node_dir(name) / "data", cache_mb=1)
    backend.put_meta(RING_META, ringstate.encode(state))
    backend.close()


def test_plain_up_starts_the_members_of_the_newest_persisted_ring(tmp_path):
    config = load_config(write_cluster_toml(tmp_path, 4, spare=1))
    # A new cluster: the file's members, not the spare n5.
    assert ring_members(config) == ["n1", "n2", "n3", "n4"]

    first = ringstate.bootstrap(config.members(), config.ring_size, config.n_val)
    joined = replace(ringstate.bootstrap([*config.node_names()], config.ring_size, 3), epoch=2)
    left = replace(ringstate.bootstrap(["n1", "n2", "n3", "n5"], config.ring_size, 3), epoch=3)
    # n4 left at epoch 3 and saw only its own last ring (epoch 2); n1 is newest.
    _persist(config, "n4", joined)
    _persist(config, "n2", first)
    _persist(config, "n1", left)
    assert ring_members(config) == ["n1", "n2", "n3", "n5"]
