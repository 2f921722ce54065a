"""The README pastes: every ```sh block runs as written, in order, in one bash session, on a copy of the checkout.

How the run works:
* The copy: the files a clone would have (`git ls-files`, tracked and untracked-but-not-ignored, so the
  working tree's README is the one tested), no data/, with this suite's venv linked in as `.venv` (its
  `.installed` stamp made newer than the copy's pyproject.toml, so no make target reinstalls it there) and
  PYTHONPATH on the copy's daemon/ (the venv's editable install points at the checkout).
* The README's first block is the set-up pair: `make run` (a member in the foreground) is started in the
  background and waited for; `make test` is skipped, since this test runs inside it.
* Every other ```sh block runs in that order in one bash session (variables and background jobs carry on
  from block to block, as in a terminal), each under `set -e`: a failing command fails the test and names
  the block's line. A block right after `<!-- not run: REASON -->` is skipped: few, each with its reason.
* Fixed ports (2379, 12379..52379, 13379.., 4001, 4379, 8087, 8000) cannot collide with a parallel run:
  the session runs in a network namespace of its own (`unshare -n`; loopback up, and a veth with a private
  address and a default route, as a host has, for `$private_ipv4`), and in a PID namespace of its own
  (`unshare -p --kill-child`), so every process a block leaves running dies with the session, even on a
  timeout.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.kit import clean_env

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
NOT_RUN = re.compile(r"<!-- not run: (\S.*?) -->")
SETUP = ["make run", "make test"]  # the first block's commands, comments aside
MAX_NOT_RUN = 3
SESSION_TIMEOUT_S = 180.0  # the whole run takes well under a minute; this only bounds a hang


@dataclass(frozen=True)
class Block:
    line: int  # README line of the opening fence (1-based)
    text: str
    not_run: str  # the reason given in the comment before it, or ""


def sh_blocks(readme: str) -> list[Block]:
    """The ```sh blocks of `readme`, in order; other fenced blocks are skipped whole."""
    lines = readme.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if not lines[i].startswith("```"):
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].rstrip() == "```")
        if lines[i].rstrip() == "```sh":
            before = [ln.strip() for ln in lines[:i] if ln.strip()]
            m = NOT_RUN.fullmatch(before[-1]) if before else None
            blocks.append(Block(i + 1, "\n".join(lines[i + 1:end]) + "\n", m.group(1) if m else ""))
        i = end + 1
    return blocks


def commands(block: Block) -> list[str]:
    return [ln.split("#", 1)[0].strip() for ln in block.text.splitlines() if ln.split("#", 1)[0].strip()]


def test_readme_blocks_are_marked() -> None:
    """The set-up pair comes first; every other block runs, bar a few with a reason."""
    readme = README.read_text()
    other_shells = re.findall(r"^```(?:bash|shell|zsh|console)\s*$", readme, re.M)
    assert not other_shells, "shell commands go in ```sh blocks (run here) or after a `<!-- not run: why -->`"
    blocks = sh_blocks(readme)
    assert commands(blocks[0]) == SETUP, "the README's first block is no longer `make run` / `make test`"
    assert not blocks[0].not_run
    skipped = [b for b in blocks if b.not_run]
    assert len(skipped) <= MAX_NOT_RUN, [(b.line, b.not_run) for b in skipped]
    assert len(blocks) - len(skipped) >= 10


def _copy_checkout(dest: Path) -> None:
    """What a clone of this checkout would hold, as of the working tree."""
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = REPO / rel
        if src.is_file() and not src.is_symlink():  # a file deleted in the working tree is not there
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def _driver(clone: Path, blocks: list[Block]) -> str:
    """The bash script of the session: network set-up, `make run`, then the blocks, all under `set -e`."""
    out = [
        "set -e",
        "ip link set lo up",
        "ip link add readme0 type veth peer name readme1",
        "ip addr add 10.213.0.2/24 dev readme0 && ip link set readme0 up && ip link set readme1 up",
        "ip route add default via 10.213.0.1",
        f"cd {clone}",
        "trap 'echo \"### README.md:$BLOCK_LINE: exit status $? from: $BASH_COMMAND\"' ERR",
        f"echo '### README.md:{blocks[0].line}: make run in the background (make test skipped: we run inside it)'",
        f"BLOCK_LINE={blocks[0].line}",
        "make run & RUN=$!",
        "for i in $(seq 300); do curl -sf -o /dev/null http://127.0.0.1:2379/health && break; kill -0 $RUN; sleep 0.2; done",
        "curl -sf -o /dev/null http://127.0.0.1:2379/health",
    ]
    for n, block in enumerate(blocks[1:], start=2):
        if block.not_run:
            out.append("echo " + shlex.quote(f"### README.md:{block.line}: not run: {block.not_run}"))
            continue
        path = clone.parent / f"block{n:02d}-line{block.line}.sh"
        path.write_text(block.text)
        out += [f"echo '### README.md:{block.line}: block {n}'", f"BLOCK_LINE={block.line}", f"source {path}"]
    out.append("echo '### every block ran'")
    return "\n".join(out) + "\n"


def _can_unshare() -> str:
    if os.geteuid() != 0:
        return "needs root (network and PID namespaces)"
    for tool in ("unshare", "ip", "curl", "make", "git", "etcdctl"):
        if shutil.which(tool) is None:
            return f"needs {tool} (etcdctl: Debian's etcd-client, which `make test` installs)"
    done = subprocess.run(["unshare", "-n", "-p", "-f", "--kill-child", "true"], capture_output=True, timeout=30)
    return "" if done.returncode == 0 else f"unshare -n -p failed: {done.stderr.decode().strip()}"


def test_readme_blocks_run_in_order(tmp_path: Path) -> None:
    why_not = _can_unshare()
    if why_not:
        pytest.skip(why_not)
    venv = Path(sys.prefix)
    stamp = venv / ".installed"
    if not stamp.exists():
        pytest.skip(f"{stamp} missing: run through `make test` (the README's make targets would rebuild the venv)")
    blocks = sh_blocks(README.read_text())
    assert commands(blocks[0]) == SETUP

    clone = tmp_path / "clone"
    clone.mkdir()
    _copy_checkout(clone)
    assert not (clone / "data").exists()
    (clone / ".venv").symlink_to(venv)
    older = stamp.stat().st_mtime - 60
    os.utime(clone / "pyproject.toml", (older, older))
    # make must see the venv as built: were it not, `make run` would reinstall the shared venv from the copy.
    dry = subprocess.run(["make", "-n", "run", "venv"], cwd=clone, capture_output=True, text=True, check=True).stdout
    assert "pip" not in dry, dry

    driver = tmp_path / "session.sh"
    driver.write_text(_driver(clone, blocks))
    log = tmp_path / "session.log"
    venv_bin = str(venv / "bin")
    path = ":".join(p for p in os.environ.get("PATH", "/usr/bin:/bin").split(":") if p and p != venv_bin)
    env = clean_env("ETCD", "PYETCD", "LOCKSMITH", "DISC_", "VIRTUAL_ENV", "PYTHON",
                    add={"PATH": path, "PYTHONPATH": str(clone / "daemon")})  # the copy's own code
    with open(log, "wb") as out:
        try:
            done = subprocess.run(["unshare", "-n", "-p", "-f", "--kill-child", "bash", str(driver)], env=env,
                                  stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                  timeout=SESSION_TIMEOUT_S)
            status: int | str = done.returncode
        except subprocess.TimeoutExpired:
            status = f"no end within {SESSION_TIMEOUT_S:.0f} s"
    text = log.read_text(errors="replace")
    markers = [ln for ln in text.splitlines() if ln.startswith("### ")]
    assert status == 0 and markers[-1:] == ["### every block ran"], (
        f"README session: {status}; the blocks reached:\n" + "\n".join(markers)
        + f"\n--- last lines of {log}:\n" + "\n".join(text.splitlines()[-60:]))
    # What exit statuses do not show: an etcd error a `curl -s` printed, a tool's crash.
    bad = [ln for ln in text.splitlines() if '"errorCode"' in ln or ln.startswith("Traceback")]
    assert not bad, f"the README session printed errors (whole output: {log}):\n" + "\n".join(bad)
