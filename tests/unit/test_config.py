"""cluster.toml parsing: the shipped file loads, and mistakes get a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from spinekv.config import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]

BASE = {"node": [{"name": "n1", "host": "127.0.0.1", "http_port": 1000, "peer_port": 1001}]}


def test_shipped_cluster_toml_has_five_members_and_a_spare():
    config = load_config(ROOT / "cluster.toml")
    assert config.members() == ["n1", "n2", "n3", "n4", "n5"]
    # n6 is for the README's membership walkthrough: configured, not in the first ring.
    assert config.node_names() == ["n1", "n2", "n3", "n4", "n5", "n6"]
    assert config.nodes_dir == ROOT / "nodes"
    assert config.ring_size == 64 and config.n_val == 3
    assert config.bucket_type("default").allow_mult is False
    assert config.bucket_type("records").allow_mult is True
    assert config.bucket_type("nope") is None
    assert config.root == ROOT


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"cluster": {"ring_size": 48}}, "power of two"),
        ({"cluster": {"n_val": 0}}, "n_val"),
        ({"bucket_defaults": {"r": "most"}}, "bucket_defaults.r"),
        ({"bucket_defaults": {"colour": 1}}, "unknown bucket property"),
        ({"node": []}, "no [[node]]"),
        ({"node": [{"name": "n1", "http_port": 0, "peer_port": 5}]}, "port"),
        ({"node": BASE["node"] * 2}, "appears twice"),
        ({"cluster": {"nodes_dir": ""}}, "cluster.nodes_dir"),
        ({"cluster": {"nodes_dir": 3}}, "cluster.nodes_dir"),
    ],
)
def test_bad_config_is_rejected_with_reason(data, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_config({**BASE, **data}, Path("/tmp/cluster.toml"))


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "cluster.toml")


@pytest.mark.parametrize(
    ("file", "cluster", "folder"),
    [
        ("cluster.toml", {}, "nodes"),
        ("other.toml", {}, "nodes-other"),
        ("other.toml", {"nodes_dir": "elsewhere/nodes"}, "elsewhere/nodes"),
        ("cluster.toml", {"nodes_dir": "nodes-b"}, "nodes-b"),
    ],
)
def test_node_folders_are_kept_apart_per_config_file(file, cluster, folder):
    """Two cluster files in one folder never share nodes/<name>/ (pid files, data, logs)."""
    config = parse_config({**BASE, "cluster": cluster}, Path("/srv/spine") / file)
    assert config.nodes_dir == Path("/srv/spine") / folder
    assert config.node_dir("n1") == Path("/srv/spine") / folder / "n1"
