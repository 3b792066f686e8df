"""The README's examples, run as pasted against a real local cluster, so that they stay true.

Every ```sh block runs in document order in one bash session with `set -euo pipefail`, from a
folder holding a copy of cluster.toml (its ports replaced by free ones, and the README's
`localhost:8098`-style ports rewritten to match) and of examples/, with `spinekv` and `python`
on PATH. A ```python block runs at its place in the same session, through `python -`.
A block right after a `<!-- readme-test: skip (reason) -->` line is left out.

HTTP statuses: `# -> NNN` in the comment on a command's last line, or in a comment line after
it, is the status its last curl must get; a command that runs curl without one must get a 2xx.
"""

from __future__ import annotations

import contextlib
import csv
import http.server
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import free_ports

from .conftest import running_cluster

ROOT = Path(__file__).resolve().parents[2]
SKIP = re.compile(r"<!--\s*readme-test:\s*skip\s*\((?P<reason>.+)\)\s*-->")
FENCE = re.compile(r"```(?P<lang>\w+)\s*")
EXPECT = re.compile(r"(?:^|\s)#.*?->\s*(?P<status>\d{3})\b")
PORT = re.compile(r"\b(?P<host>localhost|127\.0\.0\.1):(?P<port>\d+)\b")
CONFIG_PORT = re.compile(r"^(?P<key>\s*(?:http|peer)_port\s*=\s*)(?P<port>\d+)", re.M)
RUNS = {"sh", "python"}  # blocks in other languages are shown, not run
RUN_SECONDS = 300  # the whole README: about a minute on a busy machine


@dataclass(frozen=True)
class Block:
    lang: str
    line: int  # of the block's first line of code, 1-based
    text: str
    skip: str | None  # the reason it is left out


@dataclass(frozen=True)
class Command:
    line: int
    text: str
    expect: str | None  # "NNN" from a `# -> NNN` comment


def blocks(markdown: str) -> list[Block]:
    """The fenced code blocks with a language, each with the skip reason written before it."""
    found: list[Block] = []
    lines = markdown.splitlines()
    skip: tuple[int, str] | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        marker = SKIP.fullmatch(line.strip())
        fence = FENCE.fullmatch(line)
        if marker:
            skip = (i + 1, marker["reason"])
        elif fence or line.startswith("```"):
            end = lines.index("```", i + 1)
            if fence:
                text = "\n".join(lines[i + 1 : end]) + "\n"
                found.append(Block(fence["lang"], i + 2, text, skip[1] if skip else None))
            elif skip:
                raise ValueError(f"README line {skip[0]}: a skip marker before a plain block")
            skip = None
            i = end
        elif line.strip() and skip:
            raise ValueError(f"README line {skip[0]}: the skip marker is not right before a block")
        i += 1
    if skip:
        raise ValueError(f"README line {skip[0]}: a skip marker with no block after it")
    return found


def _complete(text: str) -> bool:
    """Whether bash reads `text` as whole commands (no open quote, pipe or continuation)."""
    if text.rstrip().endswith("\\"):
        return False
    checked = subprocess.run(["bash", "-n", "-c", text], capture_output=True)
    return checked.returncode == 0


def commands(block: Block) -> list[Command]:
    """The block's commands, each with the status its comments promise."""
    found: list[Command] = []
    notes: list[str] = []  # comments that follow the last command
    start, pending = 0, []

    def close_last() -> None:
        if found:
            last = found[-1]
            match = EXPECT.search("\n".join([last.text.splitlines()[-1], *notes]))
            found[-1] = Command(last.line, last.text, match["status"] if match else None)
        notes.clear()

    for offset, line in enumerate(block.text.splitlines()):
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            notes.append(line)
            continue
        if not pending:
            close_last()
            start = block.line + offset
        pending.append(line)
        if _complete("\n".join(pending)):
            found.append(Command(start, "\n".join(pending), None))
            pending = []
    if pending:
        raise ValueError(f"README line {start}: the command does not end within its block")
    close_last()
    return found


PRELUDE = r"""set -Eeuo pipefail
README_LINE=0
trap 'echo "README line $README_LINE failed (exit $?): $BASH_COMMAND" >&2' ERR
# An unset variable stops bash without the ERR trap; name the README line then too.
trap 'rc=$?; ((rc == 0)) || echo "README line $README_LINE: stopped (exit $rc)" >&2' EXIT
# Every curl leaves its response headers where readme_expect reads the status.
curl() { command curl -D "$README_HEADERS" "$@"; }
readme_expect() {
    local got=""
    if [[ -f $README_HEADERS ]]; then
        got=$(sed -n 's|^HTTP/[^ ]* \([0-9][0-9][0-9]\).*|\1|p' "$README_HEADERS" | tail -n 1)
    fi
    if [[ $1 == 2xx && $got == 2?? || $got == "$1" ]]; then
        return 0
    fi
    echo "README line $README_LINE: HTTP ${got:-(no answer)}, expected $1" >&2
    exit 1
}
"""


def script(selected: list[Block], headers: Path) -> str:
    """One bash script running the blocks in order, checking each curl's status."""
    parts = [f"README_HEADERS={shlex.quote(str(headers))}", PRELUDE]
    for block in selected:
        if block.lang == "python":
            parts += [
                f"README_LINE={block.line}",
                f"python - <<'README_PYTHON'\n{block.text}README_PYTHON",
            ]
            continue
        for command in commands(block):
            parts.append(f"README_LINE={command.line}")
            if "curl" not in command.text:
                if command.expect is not None:
                    raise ValueError(f"README line {command.line}: a status for no curl")
                parts.append(command.text)
                continue
            parts += [
                'rm -f "$README_HEADERS"',
                command.text,
                f"readme_expect {command.expect or '2xx'}",
            ]
    return "\n".join(parts) + "\n"


def with_ports(text: str, ports: dict[int, int]) -> str:
    def swap(m: re.Match) -> str:
        port = int(m["port"])
        return f"{m['host']}:{ports.get(port, port)}"

    return PORT.sub(swap, text)


def run(folder: Path, text: str, timeout: float = RUN_SECONDS) -> subprocess.CompletedProcess:
    """Run a script as a user would from `folder`, with `spinekv` and `python` on PATH."""
    bin_dir = folder / "bin"
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "spinekv"
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m spinekv "$@"\n')
    shim.chmod(0o755)
    with contextlib.suppress(FileExistsError):
        (bin_dir / "python").symlink_to(sys.executable)
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),  # this checkout's spinekv, and tests.sim for its block
        "HOME": str(folder),
        "LANG": "C.UTF-8",
    }
    return subprocess.run(
        ["bash", "-c", text],
        cwd=folder,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )


def copy_cluster_toml(folder: Path, ports: list[int]) -> tuple[Path, dict[int, int]]:
    """The repository's cluster.toml in `folder` on `ports`; and old port -> new port."""
    text = (ROOT / "cluster.toml").read_text()
    old = [int(m["port"]) for m in CONFIG_PORT.finditer(text)]
    mapping = dict(zip(old, ports, strict=True))
    text = CONFIG_PORT.sub(lambda m: m["key"] + str(mapping[int(m["port"])]), text)
    path = folder / "cluster.toml"
    path.write_text(text)
    return path, mapping


# ------------------------------------------------------------------ the README itself


@pytest.mark.timeout(RUN_SECONDS + 120)
def test_every_readme_example_runs_as_pasted(tmp_path, request):
    config_ports = len(CONFIG_PORT.findall((ROOT / "cluster.toml").read_text()))
    path, ports = copy_cluster_toml(tmp_path, free_ports(config_ports))
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    found = blocks((ROOT / "README.md").read_text())
    selected = [b for b in found if b.lang in RUNS and b.skip is None]
    text = with_ports(script(selected, tmp_path / "headers.txt"), ports)
    with running_cluster(path, request):
        result = run(tmp_path, text)
    if result.returncode != 0:
        pytest.fail(result.stdout[-8000:], pytrace=False)
    # The claim the README makes about the trace's answer, row by row.
    with (tmp_path / "traced.csv").open(newline="") as f:
        kinds = {row["UNIQUE REFERENCE"]: row["MATCH_TYPE"] for row in csv.DictReader(f)}
    assert kinds == {
        "row-1": "alphanumeric",
        "row-2": "no-match",
        "row-3": "no-match",
        "row-4": "invalid",
        "row-5": "invalid",
        "row-6": "cross-check",
    }


def test_the_readme_leaves_out_few_blocks_and_says_why():
    found = [b for b in blocks((ROOT / "README.md").read_text()) if b.lang in RUNS]
    skipped = [b for b in found if b.skip is not None]
    assert all(b.skip.strip() for b in skipped)
    assert len(skipped) <= 6, [(b.line, b.skip) for b in skipped]
    assert len(found) - len(skipped) >= 8
    # Every block that runs splits into whole commands, each status on a command with curl.
    script([b for b in found if b.skip is None], Path("/nonexistent"))


def test_a_skip_marker_applies_to_the_block_right_after_it():
    text = "x\n<!-- readme-test: skip (slow) -->\n```sh\nsleep 1000\n```\n\n```sh\necho hi\n```\n"
    assert [(b.line, b.text, b.skip) for b in blocks(text)] == [
        (4, "sleep 1000\n", "slow"),
        (8, "echo hi\n", None),
    ]
    with pytest.raises(ValueError, match="line 1: the skip marker is not right before"):
        blocks("<!-- readme-test: skip (slow) -->\ntext\n```sh\necho hi\n```\n")
    with pytest.raises(ValueError, match="line 2: a skip marker with no block"):
        blocks("text\n<!-- readme-test: skip (slow) -->\n")


# ------------------------------------------------------------------ the runner fails when it should


@contextlib.contextmanager
def http_server(folder: Path) -> Iterator[int]:
    """A static file server on a free port: a file answers 200, anything else 404."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize(
    ("example", "failure"),
    [
        ("curl -s localhost:8098/missing\n", "HTTP 404, expected 2xx"),
        ("curl -s localhost:8098/here   # -> 404\n", "HTTP 200, expected 404"),
        ("curl -s localhost:8098/here\n# -> 201, created\n", "HTTP 200, expected 201"),
        ('echo "$NEVER_SET"\n', "README line 1: stopped (exit 1)"),
        ("false | cat\n", "README line 1 failed (exit 1)"),
        ("curl -s localhost:1/here\n", "README line 1 failed (exit 7)"),
    ],
)
def test_a_broken_example_fails_the_run(tmp_path, example, failure):
    (tmp_path / "here").write_text("hello")
    block = Block("sh", 1, example, None)
    with http_server(tmp_path) as port:
        result = run(tmp_path, with_ports(script([block], tmp_path / "h.txt"), {8098: port}), 30)
    assert result.returncode != 0
    assert failure in result.stdout


def test_promised_statuses_and_sessions_carry_across_blocks(tmp_path):
    (tmp_path / "here").write_text("hello")
    first = Block("sh", 1, "URL=localhost:8098\ncurl -s $URL/missing   # -> 404\n", None)
    second = Block("sh", 9, "curl -s \\\n  $URL/here\n", None)
    third = Block("python", 20, "print('from python')\n", None)
    with http_server(tmp_path) as port:
        text = with_ports(script([first, second, third], tmp_path / "h.txt"), {8098: port})
        result = run(tmp_path, text, 30)
    assert result.returncode == 0, result.stdout
    assert "hello" in result.stdout and "from python" in result.stdout
    assert [c.expect for c in commands(first)] == [None, "404"]
    assert [(c.line, c.text) for c in commands(second)] == [(9, "curl -s \\\n  $URL/here")]
