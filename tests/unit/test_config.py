"""cluster.toml parsing: the shipped file loads, and mistakes get a clear error naming the file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from spinekv.config import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]

BASE = {"node": [{"name": "n1", "host": "127.0.0.1", "http_port": 1000, "peer_port": 1001}]}

NODES = "".join(
    f'[[node]]\nname = "n{i}"\nhttp_port = {1000 + 2 * i}\npeer_port = {1001 + 2 * i}\n'
    for i in range(1, 4)
)


def write(folder: Path, text: str, name: str = "other.toml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def refusal(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return str(caught.value)


def test_shipped_cluster_toml_has_five_members_and_a_spare():
    config = load_config(ROOT / "cluster.toml")
    assert config.members() == ["n1", "n2", "n3", "n4", "n5"]
    # n6 is for the README's membership walkthrough: configured, not in the first ring.
    assert config.node_names() == ["n1", "n2", "n3", "n4", "n5", "n6"]
    assert config.nodes_dir == ROOT / "nodes"
    assert config.ring_size == 64 and config.n_val == 3
    assert config.aae.enabled and config.aae.tick_ms == 60_000 and config.aae.rebuild_days == 7
    assert config.aae.pause_backlog == 64
    assert config.aae.max_repairs == 1000
    assert config.bucket_type("default").allow_mult is False
    assert config.bucket_type("records").allow_mult is True
    assert config.bucket_type("nope") is None
    assert config.root == ROOT
    assert config.path == ROOT / "cluster.toml"
    assert config.nodes_dir == ROOT / "nodes"


def test_every_key_of_every_table_is_accepted(tmp_path):
    path = write(
        tmp_path,
        """
[cluster]
name = "full"
ring_size = 32
n_val = 2
request_timeout_ms = 2000
max_object_size = 1024
nodes_dir = "run"

[bucket_defaults]
r = 1
allow_mult = false

[bucket_types.maps]
datatype = "map"

[records]
bucket_type = "maps"
nhs_number_range = ["9990000000", "9990000099"]

[aae]
enabled = false
tick_ms = 5000
rebuild_days = 0.5
pause_backlog = 0
max_repairs = 20

[[user]]
name = "u"
role = "admin"
token_hash = "scrypt$10$8$1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
grants = [{ on = "maps/b", permissions = ["get", "index"] }]

[[source]]
cidr = "10.0.0.0/8"
method = "trust"
user = "u"

[[node]]
name = "n1"
host = "127.0.0.2"
http_port = 1000
peer_port = 1001
member = false
""",
    )
    config = load_config(path)
    assert (config.name, config.ring_size, config.n_val) == ("full", 32, 2)
    assert (config.request_timeout_ms, config.max_object_size) == (2000, 1024)
    assert config.nodes_dir == tmp_path / "run"
    assert config.bucket_defaults.r == 1 and config.bucket_defaults.n_val == 2
    assert config.bucket_type("maps").datatype == "map"
    assert config.records.bucket_type == "maps"
    assert config.records.nhs_number_range == (9_990_000_000, 9_990_000_099)
    user = config.user("u")
    assert user.role == "admin" and user.token_hash.startswith("scrypt$")
    assert user.grants[0].bucket_type == "maps" and user.grants[0].bucket == "b"
    assert user.grants[0].permissions == {"get", "index"}
    assert str(config.sources[0].cidr) == "10.0.0.0/8" and config.sources[0].user == "u"
    assert config.nodes[0].host == "127.0.0.2" and config.nodes[0].member is False
    assert (config.aae.enabled, config.aae.tick_ms, config.aae.rebuild_days) == (False, 5000, 0.5)
    assert config.aae.pause_backlog == 0
    assert config.aae.max_repairs == 20


# Each mistake with the start of its refusal, after the file's path.
MISSPELT = [
    ("[cluster]\nring_szie = 32\n", "unknown key cluster.ring_szie (did you mean ring_size?)"),
    ("[cluster]\nnval = 2\n", "unknown key cluster.nval (did you mean n_val?)"),
    (
        "[bucket_defualts]\nr = 1\n",
        "unknown key bucket_defualts (did you mean bucket_defaults?)",
    ),
    (
        "[records]\nbucket_typ = 'x'\n",
        "unknown key records.bucket_typ (did you mean bucket_type?)",
    ),
    (
        "[[user]]\nname = 'u'\nrole = 'admin'\ntokn = 't'\n",
        "unknown key user[0].tokn (did you mean token?)",
    ),
    (
        "[bucket_defaults]\nallow_mutl = true\n",
        "unknown bucket property bucket_defaults.allow_mutl (did you mean allow_mult?)",
    ),
    (
        "[bucket_types.sets]\nnval = 2\n",
        "unknown bucket property bucket_types.sets.nval (did you mean n_val?)",
    ),
    ("zones = 3\n", "unknown key zones (expected one of cluster, bucket_defaults, "),
]
WRONG_TYPES = [
    ("[cluster]\nring_size = '64'\n", "cluster.ring_size must be an integer"),
    ("[cluster]\nn_val = true\n", "cluster.n_val must be an integer"),
    ("[cluster]\nname = 5\n", "cluster.name must be a string"),
    ("[aae]\nenabled = 'yes'\n", "aae.enabled must be true or false"),
    ("[aae]\ntick = 5\n", "unknown key aae.tick (did you mean tick_ms?)"),
    ("cluster = 5\n", "cluster must be a table"),
    ("[bucket_types]\nsets = 5\n", "bucket_types.sets must be a table"),
    ("[records]\nnhs_number_range = ['9990000000', 9]\n", "records.nhs_number_range[1]"),
    ("[user]\nname = 'u'\n", "user must be an array of [[user]] tables"),
]


@pytest.mark.parametrize(("text", "message"), MISSPELT + WRONG_TYPES)
def test_mistakes_are_refused_naming_the_file_the_key_and_the_nearest_valid_one(
    tmp_path, text, message
):
    path = write(tmp_path, text + NODES)
    assert refusal(path).startswith(f"{path}: {message}")


def test_an_unknown_key_in_a_later_node_names_that_node(tmp_path):
    text = NODES.replace('name = "n3"\n', 'name = "n3"\nhots = "10.0.0.3"\n')
    assert refusal(write(tmp_path, text)) == (
        f"{tmp_path / 'other.toml'}: unknown key node[2].hots (did you mean host?)"
    )


def test_every_unknown_key_is_listed_at_once(tmp_path):
    message = refusal(write(tmp_path, "[cluster]\nring_szie = 32\nnval = 2\n" + NODES))
    assert "cluster.ring_szie (did you mean ring_size?)" in message
    assert "cluster.nval (did you mean n_val?)" in message


def test_a_nodes_member_flag_must_be_a_boolean(tmp_path):
    text = NODES.replace('name = "n2"\n', 'name = "n2"\nmember = "no"\n')
    assert refusal(write(tmp_path, text)).endswith("node[1].member must be true or false")


def test_every_refusal_names_the_file_it_was_read_from(tmp_path):
    path = write(tmp_path, "[cluster]\nring_size = 48\n" + NODES, name="staging.toml")
    assert refusal(path) == f"{path}: cluster.ring_size = 48: must be a power of two"
    broken = write(tmp_path, "[cluster\n", name="broken.toml")
    assert refusal(broken).startswith(f"{broken}: ")
    assert refusal(tmp_path / "absent.toml") == f"{tmp_path / 'absent.toml'}: not found"


def test_unknown_node_names_the_file(tmp_path):
    config = load_config(write(tmp_path, NODES))
    with pytest.raises(ConfigError, match=re.escape(f"no node named 'n9' in {config.path}")):
        config.node("n9")


def test_nodes_dir_defaults_to_nodes_beside_cluster_toml(tmp_path):
    config = load_config(write(tmp_path, NODES, name="cluster.toml"))
    assert config.path == tmp_path / "cluster.toml"
    assert config.nodes_dir == tmp_path / "nodes"
    assert config.node_dir("n1") == tmp_path / "nodes" / "n1"


def test_another_file_gets_node_folders_of_its_own(tmp_path):
    default = load_config(write(tmp_path, NODES, name="cluster.toml"))
    other = load_config(write(tmp_path, NODES, name="other.toml"))
    assert other.path == tmp_path / "other.toml"
    assert other.nodes_dir == tmp_path / "nodes-other"
    assert other.node_dir("n1") != default.node_dir("n1")


def test_nodes_dir_is_relative_to_the_files_folder(tmp_path):
    config = load_config(write(tmp_path, '[cluster]\nnodes_dir = "run/a"\n' + NODES))
    assert config.nodes_dir == tmp_path / "run" / "a"
    assert config.node_dir("n2") == tmp_path / "run" / "a" / "n2"
    empty = write(tmp_path, '[cluster]\nnodes_dir = ""\n' + NODES, name="empty.toml")
    assert refusal(empty).endswith("cluster.nodes_dir must be a folder name, not empty")


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
        ({"aae": {"tick_ms": 0}}, "aae.tick_ms must be at least 1"),
        ({"aae": {"rebuild_days": 0}}, "aae.rebuild_days must be positive"),
        ({"aae": {"pause_backlog": -1}}, "aae.pause_backlog must be at least 0"),
        ({"aae": {"max_repairs": 0}}, "aae.max_repairs must be at least 1"),
    ],
)
def test_bad_config_is_rejected_with_reason(data, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
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


# ------------------------------------------------------------------ replication tables

REPL = """
[[replication.source]]
name = "dr"
filter = "any"

[[replication.source]]
name = "pds-only"
filter = "prefix:records/patients/999"
max_entries = 500

[[replication.sink]]
name = "from-primary"
peers = ["10.0.0.1:8087", "[::1]:8088"]
queue = "dr"
workers = 4
fullsync_every_s = 0
scope = "bucket:records/patients"
token_file = "secrets/primary.token"

[[replication.sink]]
name = "defaults"
peers = ["primary.example:9000"]
queue = "dr"
"""


def test_replication_tables_are_read_with_their_defaults(tmp_path):
    config = load_config(write(tmp_path, NODES + REPL))
    dr, pds = config.replication.sources
    assert (dr.name, dr.max_entries, dr.filter.kind) == ("dr", 1_000_000, "any")
    assert (pds.name, pds.max_entries) == ("pds-only", 500)
    assert pds.filter.matches(b"records", b"patients", b"9990001")
    assert not pds.filter.matches(b"records", b"patients", b"9880001")
    assert not pds.filter.matches(b"records", b"other", b"9990001")
    sink, plain = config.replication.sinks
    assert sink.peers == (("10.0.0.1", 8087), ("::1", 8088))
    assert (sink.queue, sink.workers, sink.fullsync_every_s) == ("dr", 4, 0.0)
    assert (sink.scope.bucket_type, sink.scope.bucket) == (b"records", b"patients")
    assert plain.peers == (("primary.example", 9000),)
    assert (plain.workers, plain.fullsync_every_s, plain.scope.kind) == (8, 3600.0, "any")
    # Like other paths in the file, the token file is found beside it.
    assert sink.token_file == tmp_path / "secrets" / "primary.token"
    assert plain.token_file is None


def test_no_replication_tables_means_no_queues_and_no_sinks(tmp_path):
    config = load_config(write(tmp_path, NODES))
    assert config.replication.sources == () and config.replication.sinks == ()


def _source(**table):
    return {"replication": {"source": [{"name": "dr", "filter": "any", **table}]}}


def _sink(**table):
    base = {"name": "s", "peers": ["h:1"], "queue": "dr"}
    return {"replication": {"sink": [{**base, **table}]}}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_source(filter="bucket:records"), "replication.source[0].filter: 'bucket:records'"),
        (_source(filter="type:"), "replication.source[0].filter"),
        (_source(filter="everything"), 'expected "any", "type:T", "bucket:T/B" or "prefix:T'),
        (_source(filter="prefix:t/b/"), "a prefix filter needs a non-empty prefix"),
        (_source(filter="prefix:t/b"), "replication.source[0].filter"),
        (_source(max_entries=0), "replication.source[0].max_entries must be at least 1"),
        (_source(name="d r"), "replication.source[0].name = 'd r': a queue name is"),
        (_source(max_entries="1"), "replication.source[0].max_entries must be an integer"),
        (_source(filtre="any"), "unknown key replication.source[0].filtre (did you mean filter?)"),
        ({"replication": {"source": [{"name": "dr"}]}}, "replication.source[0].filter is required"),
        (
            {"replication": {"source": [{"name": "dr", "filter": "any"}] * 2}},
            "replication.source[1].name: queue 'dr' appears twice",
        ),
        (_sink(peers=[]), "replication.sink[0].peers must list"),
        (_sink(peers=["h"]), "replication.sink[0].peers[0] = 'h': expected \"host:port\""),
        (_sink(peers=["h:99999"]), "replication.sink[0].peers[0]"),
        (_sink(peers=["h:1", ":5"]), "replication.sink[0].peers[1]"),
        (_sink(peers="h:1"), "replication.sink[0].peers must be an array"),
        (_sink(queue=""), "replication.sink[0].queue = ''"),
        (_sink(workers=0), "replication.sink[0].workers must be at least 1"),
        (_sink(fullsync_every_s=-1), "replication.sink[0].fullsync_every_s must be 0"),
        (_sink(scope="prefix:t/b/p"), "replication.sink[0].scope = 'prefix:t/b/p': expected"),
        (_sink(scope="bucket:t"), "replication.sink[0].scope"),
        (_sink(name=""), "replication.sink[0].name must be a non-empty string"),
        (_sink(schedule=5), "unknown key replication.sink[0].schedule"),
        (_sink(token_file=" "), "replication.sink[0].token_file must be a file name"),
        ({"replication": {"sink": [{"name": "s", "queue": "q"}]}}, "replication.sink[0].peers"),
        ({"replication": {"queues": []}}, "unknown key replication.queues"),
    ],
)
def test_bad_replication_tables_are_refused_naming_the_key(data, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config({**BASE, **data}, Path("/tmp/cluster.toml"))
