"""`spinekv admin tls init`: what it decides to issue (pure), and the files it writes."""

from __future__ import annotations

import ipaddress
import ssl
import stat
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from spinekv.cli import main
from spinekv.config import NodeSpec, load_config, parse_config
from spinekv.security.tls import client_context, server_context
from spinekv.security.tlsplan import PlanError, alt_names, plan, tls_table
from tests.support import write_cluster_toml

IP = ipaddress.ip_address
NODES = (NodeSpec("n1", "127.0.0.1", 1, 2), NodeSpec("n2", "db2.example.org", 3, 4))
TLS = Path("/c/tls")


def files(*names: str) -> set[Path]:
    return {TLS / name for name in names}


# ---------------------------------------------------------------- what to issue (pure)


def test_a_node_answers_to_its_host_and_to_loopback():
    assert alt_names("10.0.0.7") == (("localhost",), (IP("10.0.0.7"), IP("127.0.0.1")))
    assert alt_names("DB2.example.org") == (("db2.example.org", "localhost"), (IP("127.0.0.1"),))
    # Loopback itself is named once; an address a node only listens on names nothing.
    assert alt_names("127.0.0.1") == (("localhost",), (IP("127.0.0.1"),))
    assert alt_names("localhost") == (("localhost",), (IP("127.0.0.1"),))
    assert alt_names("0.0.0.0") == (("localhost",), (IP("127.0.0.1"),))
    assert alt_names("::1") == (("localhost",), (IP("::1"), IP("127.0.0.1")))


def test_an_empty_folder_gets_a_new_ca_and_every_node():
    found = plan("spine", NODES, TLS, set())
    assert found.new_ca
    assert (found.ca.common_name, found.ca.cert, found.ca.key) == (
        "spinekv spine CA",
        TLS / "ca.crt",
        TLS / "ca.key",
    )
    assert [(i.common_name, i.cert, i.key) for i in found.issue] == [
        ("n1", TLS / "n1.crt", TLS / "n1.key"),
        ("n2", TLS / "n2.crt", TLS / "n2.key"),
    ]
    assert found.issue[1].dns_names == ("db2.example.org", "localhost")
    assert found.kept == ()


def test_the_ca_there_signs_only_the_nodes_without_files():
    found = plan("spine", NODES, TLS, files("ca.crt", "ca.key", "n1.crt", "n1.key", "notes.txt"))
    assert not found.new_ca
    assert [i.common_name for i in found.kept] == ["n1"]
    assert [i.common_name for i in found.issue] == ["n2"]


def test_everything_there_is_kept():
    found = plan(
        "spine", NODES, TLS, files("ca.crt", "ca.key", "n1.crt", "n1.key", "n2.crt", "n2.key")
    )
    assert (found.new_ca, found.issue) == (False, ())
    assert [i.common_name for i in found.kept] == ["n1", "n2"]


@pytest.mark.parametrize(
    ("present", "named"),
    [
        ({"ca.key"}, "ca.key is there without its pair"),
        ({"ca.crt", "ca.key", "n2.key"}, "n2.key is there without its pair"),
        ({"n1.crt", "n1.key"}, "n1.crt is there but the CA that signed it is not"),
    ],
)
def test_files_that_cannot_be_completed_are_refused_by_name(present, named):
    with pytest.raises(PlanError, match=named):
        plan("spine", NODES, TLS, files(*present))


def test_force_makes_a_new_ca_and_every_node_whatever_is_there():
    found = plan("spine", NODES, TLS, files("n1.crt", "ca.key"), force=True)
    assert found.new_ca
    assert [i.common_name for i in found.issue] == ["n1", "n2"]
    assert found.kept == ()


def test_the_tls_table_names_files_relative_to_the_cluster_file(tmp_path):
    table = tls_table(tmp_path / "tls", tmp_path)
    assert table == '[tls]\nca = "tls/ca.crt"\ncert = "tls/{node}.crt"\nkey = "tls/{node}.key"\n'
    # What the table says is where the files are, as the config reads it.
    settings = parse_config(
        {**tomllib.loads(table), "node": [{"name": "n1", "http_port": 1, "peer_port": 2}]},
        tmp_path / "cluster.toml",
    ).tls
    assert settings is not None
    assert (settings.ca, settings.cert_for("n1"), settings.key_for("n1")) == (
        tmp_path / "tls" / "ca.crt",
        tmp_path / "tls" / "n1.crt",
        tmp_path / "tls" / "n1.key",
    )
    # A folder outside the cluster file's is named in full.
    assert f'ca = "{tmp_path.parent}/elsewhere/ca.crt"' in tls_table(
        tmp_path.parent / "elsewhere", tmp_path
    )


# ---------------------------------------------------------------- the command


@pytest.fixture
def cluster_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return write_cluster_toml(tmp_path, 2, extra=tls_table(tmp_path / "tls", tmp_path))


def tls_init(path: Path, *args: str):
    return CliRunner().invoke(main, ["--config", str(path), "admin", "tls", "init", *args])


def test_init_writes_a_ca_and_node_certificates_it_signed(cluster_file):
    result = tls_init(cluster_file, "--days", "30")
    assert result.exit_code == 0, result.output
    assert tls_table(cluster_file.parent / "tls", cluster_file.parent) in result.output
    folder = cluster_file.parent / "tls"
    ca = x509.load_pem_x509_certificate((folder / "ca.crt").read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for name in ("n1", "n2"):
        cert = x509.load_pem_x509_certificate((folder / f"{name}.crt").read_bytes())
        cert.verify_directly_issued_by(ca)
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == name
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == ["localhost"]
        assert san.get_values_for_type(x509.IPAddress) == [IP("127.0.0.1")]
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert set(usage) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
        lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
        assert 30 <= lifetime.days <= 31
    for key in ("ca.key", "n1.key", "n2.key"):
        assert stat.S_IMODE((folder / key).stat().st_mode) == 0o600, key
    assert stat.S_IMODE((folder / "n1.crt").stat().st_mode) == 0o644


def test_init_again_keeps_every_file_and_force_replaces_them(cluster_file):
    assert tls_init(cluster_file).exit_code == 0
    folder = cluster_file.parent / "tls"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    again = tls_init(cluster_file)
    assert again.exit_code == 0, again.output
    assert "n1: kept tls/n1.crt" in again.output
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before

    (folder / "n2.key").chmod(0o644)
    forced = tls_init(cluster_file, "--force")
    assert forced.exit_code == 0, forced.output
    after = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert all(after[name] != before[name] for name in before)
    assert stat.S_IMODE((folder / "n2.key").stat().st_mode) == 0o600


def test_init_refuses_a_half_pair_and_writes_nothing(cluster_file):
    folder = cluster_file.parent / "tls"
    folder.mkdir()
    (folder / "ca.crt").write_text("an old CA")
    result = tls_init(cluster_file)
    assert result.exit_code == 1
    assert "ca.crt is there without its pair" in result.output
    assert [p.name for p in folder.iterdir()] == ["ca.crt"]


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext, hostname: str) -> None:
    """A TLS handshake in memory, client to server; ssl.SSLError if either refuses."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client_end = client.wrap_bio(c_in, c_out, server_hostname=hostname)
    server_end = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(10):
        for name, end, out, peer_in in (
            ("client", client_end, c_out, s_in),
            ("server", server_end, s_out, c_in),
        ):
            if not done[name]:
                try:
                    end.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
            peer_in.write(out.read())
        if all(done.values()):
            return
    raise AssertionError("the handshake did not finish")


def test_the_files_serve_https_that_a_client_trusting_the_ca_accepts(cluster_file, tmp_path):
    assert tls_init(cluster_file).exit_code == 0
    tls = load_config(cluster_file).tls
    assert tls is not None
    server = server_context(tls, "n1", require_client_cert=False)
    for hostname in ("127.0.0.1", "localhost"):
        _handshake(server, client_context(tls), hostname)
    # A node dialling a peer presents its own certificate, which the peer port requires.
    _handshake(
        server_context(tls, "n1", require_client_cert=True), client_context(tls, "n2"), "127.0.0.1"
    )
    with pytest.raises(ssl.SSLCertVerificationError, match=r"Hostname mismatch"):
        _handshake(server, client_context(tls), "db.example.org")

    # A client that trusts another CA refuses the node's certificate.
    other = tmp_path / "other"
    other.mkdir()
    other_file = write_cluster_toml(other, 1, extra=tls_table(other / "tls", other))
    assert tls_init(other_file).exit_code == 0
    other_tls = load_config(other_file).tls
    assert other_tls is not None
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        _handshake(server, client_context(other_tls), "127.0.0.1")
