"""HTTPS, as a user turns it on: `spinekv admin tls init`, the [tls] table, then `spinekv up`.

The cluster's HTTP ports then speak HTTPS only: curl given the CA, spinekv's own commands,
spinekv.Client.from_config and the official Riak client (basic auth, as a granted user) all
work; plain HTTP, and a client trusting another CA, are refused.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
from contextlib import closing

import pytest

from spinekv import Client, Unreachable
from spinekv.security.secrets import hash_secret
from spinekv.security.tlsplan import tls_table
from tests.records_support import TOKENS, USERS_TOML
from tests.riak_shim import import_riak
from tests.support import write_cluster_toml

from .conftest import ProcessCluster, running_cluster

pytestmark = pytest.mark.filterwarnings(
    # The Riak client: distutils' LooseVersion of /stats, and its PROTOCOL_TLSv1_2 default.
    "ignore:distutils Version classes are deprecated:DeprecationWarning",
    "ignore:ssl.PROTOCOL_TLSv1_2 is deprecated:DeprecationWarning",
)

riak = import_riak()

PASSWORD = "riak-client-password"
# A user of the Riak client's kind: a password (HTTP basic) and a grant on the record API's
# bucket type, which loopback's trusted `local` does not have, so only basic auth reaches it.
# Its own source on loopback, as Riak's `add-source alice 127.0.0.1/32 password`.
ALICE = f"""
[[user]]
name = "alice"
password_hash = "{hash_secret(PASSWORD)}"
grants = [{{ on = "records", permissions = ["get", "put", "delete", "list"] }}]

[[source]]
cidr = "127.0.0.1/32"
method = "password"
users = ["alice"]
"""


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory, request):
    folder = tmp_path_factory.mktemp("tls")
    extra = "\n".join([tls_table(folder / "tls", folder), USERS_TOML, ALICE])
    path = write_cluster_toml(folder, 3, extra=extra)
    made = ProcessCluster(path).cli("admin", "tls", "init")
    assert made.returncode == 0, made.stdout + made.stderr
    assert tls_table(folder / "tls", folder) in made.stdout
    with running_cluster(path, request) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory):
    """The CA certificate of another cluster's `tls init`."""
    folder = tmp_path_factory.mktemp("other")
    path = write_cluster_toml(folder, 1, extra=tls_table(folder / "tls", folder))
    made = ProcessCluster(path).cli("admin", "tls", "init")
    assert made.returncode == 0, made.stdout + made.stderr
    return folder / "tls" / "ca.crt"


def curl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["curl", "--silent", "--show-error", "--max-time", "10", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_http_ports_speak_https_only(tls_cluster):
    cluster = tls_cluster
    ca = str(cluster.config.tls.ca)
    for name in cluster.config.node_names():
        url = cluster.url(name)
        assert url.startswith("https://127.0.0.1:")
        answer = curl("--cacert", ca, f"{url}/ping")
        assert (answer.returncode, answer.stdout) == (0, "OK"), answer.stderr
        # The names a client on this machine dials are in the certificate.
        by_name = curl(
            "--cacert", ca, f"https://localhost:{cluster.config.node(name).http_port}/ping"
        )
        assert (by_name.returncode, by_name.stdout) == (0, "OK"), by_name.stderr

        plain = curl(url.replace("https://", "http://", 1) + "/ping")
        assert plain.returncode != 0 and plain.stdout != "OK", plain
        # Without the CA, curl does not trust the node (60: the peer's certificate is unknown).
        assert curl(f"{url}/ping").returncode == 60


def test_spinekv_commands_work_over_https(tls_cluster):
    cluster = tls_cluster
    status = cluster.cli("status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert "3 of 3 nodes serving" in status.stdout
    assert cluster.url("n1") in status.stdout

    members = cluster.cli("admin", "member-status")
    assert members.returncode == 0, members.stdout + members.stderr
    assert all(name in members.stdout for name in cluster.config.node_names())

    loaded = cluster.cli("load-demo", "--patients", "3", "--token", TOKENS["clinical"])
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    assert "loaded 3 patients" in loaded.stdout


def test_the_client_trusts_the_cluster_ca_and_no_other(tls_cluster, other_ca):
    cluster = tls_cluster
    with Client.from_config(cluster.path) as client:
        assert client.nodes == [cluster.url(n) for n in cluster.config.node_names()]
        client.store("tls", "k", b"over https")
        assert client.get("tls", "k").value == b"over https"

    with Client([cluster.url("n1")], ca=cluster.config.tls.ca) as client:
        assert client.get("tls", "k").value == b"over https"

    with Client([cluster.url("n1")], ca=other_ca) as stranger, pytest.raises(Unreachable) as err:
        stranger.get("tls", "k")
    assert "certificate verify failed" in str(err.value)


def _riak_client(cluster: ProcessCluster, ca, password: str = PASSWORD) -> riak.RiakClient:
    nodes = [
        {"host": cluster.config.node(n).host, "http_port": cluster.config.node(n).http_port}
        for n in cluster.config.node_names()
    ]
    credentials = riak.security.SecurityCreds(
        username="alice", password=password, cacert_file=str(ca)
    )
    client = riak.RiakClient(
        protocol="http", nodes=nodes, credentials=credentials, transport_options={"timeout": 20}
    )
    client._http_pool.connection_class = HttpsConnection
    return client


class HttpsConnection(riak.transports.http.RiakHTTPSConnection):
    """The Riak client's HTTPS connection, connecting as it means to on this Python.

    Its own connect() calls ssl.SSLSocket(...), which has had no public constructor since
    Python 3.7; this wraps the socket with the SSLContext the client itself configures from
    the credentials (the CA, hostname checking on).
    """

    def connect(self):
        sock = socket.create_connection((self.host, self.port), self.timeout)
        context = riak.transports.security.configure_ssl_context(self.credentials)
        self.sock = context.wrap_socket(sock, server_hostname=self.host)


def test_the_riak_client_works_over_https_with_basic_auth(tls_cluster, other_ca):
    cluster = tls_cluster
    with closing(_riak_client(cluster, cluster.config.tls.ca)) as client:
        assert client.ping()
        bucket = client.bucket_type("records").bucket("riak-over-tls")
        bucket.new("k1", data={"said": "over https"}).store()
        fetched = bucket.get("k1")
        assert fetched.exists and fetched.data == {"said": "over https"}
        assert "k1" in bucket.get_keys()

    with closing(_riak_client(cluster, other_ca)) as stranger, pytest.raises(ssl.SSLError):
        stranger.bucket("riak-over-tls").get("k1")


def test_up_refuses_a_missing_ca_and_a_node_its_missing_certificate(tmp_path):
    path = write_cluster_toml(tmp_path, 1, extra=tls_table(tmp_path / "tls", tmp_path))
    cluster = ProcessCluster(path)
    try:
        nothing = cluster.cli("up", "--detach", timeout=60)
        assert nothing.returncode == 1
        assert f"cannot read the cluster CA {tmp_path / 'tls' / 'ca.crt'}" in nothing.stderr
        assert not cluster.config.node_dir("n1").exists()  # refused before starting anything

        assert cluster.cli("admin", "tls", "init").returncode == 0
        (tmp_path / "tls" / "n1.crt").unlink()
        result = cluster.cli("up", "--detach", timeout=60)
        assert result.returncode == 1, result.stdout + result.stderr
        assert "n1: cannot load its TLS certificate" in result.stdout
        assert str(tmp_path / "tls" / "n1.crt") in result.stdout
        assert cluster.pid("n1") is None
    finally:
        cluster.cli("down", timeout=60)
        cluster.kill_all()
