"""Users on real node processes, driven as an operator would: `spinekv admin user ...`.

The story:
1. `admin user add clerk` (trusted loopback, so no token needed) prints a random token once;
   `grant get,put on siblings to clerk`; `list` shows the grant and that a token is set.
2. from 127.0.0.2 (not trusted) the printed token reads and writes `siblings` on every node,
   and is refused elsewhere (403) and without it (401).
3. `revoke put on siblings from clerk`, then `del clerk`: the token stops working.
4. a node bound to an address other than loopback refuses to start while a user still has
   a documented demo token, with one line saying so.
"""

from __future__ import annotations

import http.client

from spinekv.security.secrets import DEMO_TOKENS, hash_secret
from tests.cluster.conftest import ProcessCluster, running_cluster
from tests.support import eventually_sync, write_cluster_toml

SOURCES = """
[[source]]
cidr = "0.0.0.0/0"
method = "token"
"""


def stranger(cluster: ProcessCluster, method: str, name: str, path: str, token: str | None):
    """A request from 127.0.0.2, which no trust source covers."""
    spec = cluster.config.node(name)
    conn = http.client.HTTPConnection(
        spec.host, spec.http_port, timeout=20, source_address=("127.0.0.2", 0)
    )
    headers = {"Content-Type": "text/plain"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, body=b"v" if method == "PUT" else None, headers=headers)
        return conn.getresponse().status
    finally:
        conn.close()


def test_admin_user_add_grant_revoke_del(tmp_path, request):
    with running_cluster(write_cluster_toml(tmp_path, 3, extra=SOURCES), request) as cluster:
        added = cluster.cli("admin", "user", "add", "clerk")
        assert added.returncode == 0, added.stdout + added.stderr
        token = next(
            line.split(": ", 1)[1]
            for line in added.stdout.splitlines()
            if line.startswith("token: ")
        )
        granted = cluster.cli("admin", "user", "grant", "get,put", "on", "siblings", "to", "clerk")
        assert granted.returncode == 0, granted.stdout + granted.stderr
        listed = cluster.cli("admin", "user", "list").stdout
        assert "clerk" in listed and "get,put on siblings" in listed and "token" in listed
        assert "scrypt" not in listed and token not in listed

        path = "/types/siblings/buckets/b/keys/k"

        def works_everywhere() -> bool:
            return all(
                stranger(cluster, "GET", name, path, token) == 404
                for name in cluster.config.node_names()
            )

        eventually_sync(works_everywhere, what="clerk's token to work on every node")
        assert stranger(cluster, "PUT", "n1", path, token) == 204
        assert stranger(cluster, "GET", "n2", path, token) == 200
        assert stranger(cluster, "GET", "n2", "/buckets/b/keys/k", token) == 403
        assert stranger(cluster, "GET", "n2", path, None) == 401
        # The commands send $SPINEKV_TOKEN, so they act as clerk, not as the trusted loopback.
        as_clerk = cluster.cli("admin", "member-status", env={"SPINEKV_TOKEN": token})
        said = as_clerk.stdout + as_clerk.stderr
        assert as_clerk.returncode != 0 and "no admin permission" in said, said
        assert cluster.cli("admin", "member-status").returncode == 0

        revoked = cluster.cli("admin", "user", "revoke", "put", "on", "siblings", "from", "clerk")
        assert revoked.returncode == 0, revoked.stdout + revoked.stderr
        eventually_sync(
            lambda: stranger(cluster, "PUT", "n3", path, token) == 403,
            what="the revoke to reach n3",
        )
        assert stranger(cluster, "GET", "n3", path, token) == 200
        deleted = cluster.cli("admin", "user", "del", "clerk")
        assert deleted.returncode == 0, deleted.stdout + deleted.stderr
        eventually_sync(
            lambda: stranger(cluster, "GET", "n3", path, token) == 401,
            what="the deleted user to be refused on n3",
        )


def test_a_node_off_loopback_refuses_to_start_with_demo_tokens(tmp_path):
    demo = f'[[user]]\nname = "demo"\ntoken_hash = "{hash_secret(DEMO_TOKENS[0])}"\n'
    cluster = ProcessCluster(write_cluster_toml(tmp_path, 1, extra=demo, hosts=["0.0.0.0"]))
    try:
        started = cluster.cli("up", "--detach")
        assert started.returncode != 0
        output = started.stdout + started.stderr
        assert "not loopback" in output and "demo" in output, output
    finally:
        cluster.cli("down", timeout=60)
        cluster.kill_all()
