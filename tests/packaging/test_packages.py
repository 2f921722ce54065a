"""The .deb and .rpm: build them with packaging/build-{deb,rpm}.sh, then look inside and install them.

Opt-in (PYETCD_PACKAGING_TESTS=1): building needs Debian's packaging tools, which the build scripts
apt-get install when missing, so this wants a Debian bookworm machine and root. The builds lint their
results (lintian, rpmlint) and fail on any finding that packaging/ does not override with a reason.

What is checked:
- contents: the module, one /usr/bin script and man page per [project.scripts] entry, every unit in
  units/, /etc/pyetcd/pyetcd.yaml and locksmith.conf as conffiles (%config(noreplace)), the sysusers.d
  file; and a copy of the tree with one more script and one more unit gets both into both packages;
- metadata: versions from pyproject.toml, the dependencies, the maintainer scripts' shape;
- a real install (packaging/check-install.sh) into a throwaway overlay of this machine: account and data
  directory, systemd-analyze verify, the daemon answering from the packaged config, remove/purge keeping
  the data. Skipped where overlayfs or namespaces are unavailable.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tarfile
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    os.environ.get("PYETCD_PACKAGING_TESTS") != "1",
    reason="packaging tests are opt-in: PYETCD_PACKAGING_TESTS=1 (needs Debian tooling and root)",
)

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"
UNIT_SUFFIXES = (".service", ".socket", ".timer", ".path", ".target", ".mount")
CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8", "HOME": "/root"}


def _project(root: Path = ROOT) -> dict:
    return tomllib.loads((root / "pyproject.toml").read_text())["project"]


def _units(root: Path = ROOT) -> list[str]:
    return sorted(p.name for p in (root / "units").iterdir() if p.name.endswith(UNIT_SUFFIXES))


def _run(*cmd: str | Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=CLEAN_ENV, **kw)


def _build(script: Path, dist: Path, lint: bool = True) -> tuple[Path, str]:
    env = dict(CLEAN_ENV, DIST=str(dist), PYETCD_NO_LINT="0" if lint else "1")
    proc = subprocess.run([str(script)], capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, f"{script.name} failed:\n{proc.stdout}\n{proc.stderr}"
    artifact = Path(proc.stdout.strip().splitlines()[-1])
    assert artifact.is_file() and artifact.parent == dist, proc.stdout
    return artifact, proc.stderr


@pytest.fixture(scope="module")
def deb(tmp_path_factory) -> tuple[Path, str]:
    return _build(PACKAGING / "build-deb.sh", tmp_path_factory.mktemp("dist-deb"))


@pytest.fixture(scope="module")
def rpm(tmp_path_factory) -> tuple[Path, str]:
    return _build(PACKAGING / "build-rpm.sh", tmp_path_factory.mktemp("dist-rpm"))


def _deb_tar(deb_file: Path, part: str = "--fsys-tarfile") -> tarfile.TarFile:
    out = subprocess.run(["dpkg-deb", part, str(deb_file)], capture_output=True, check=True)
    return tarfile.open(fileobj=io.BytesIO(out.stdout))


def _deb_paths(deb_file: Path) -> set[str]:
    with _deb_tar(deb_file) as tar:
        return {"/" + m.name.removeprefix("./").rstrip("/") for m in tar.getmembers()}


def _deb_member(deb_file: Path, path: str, part: str = "--fsys-tarfile") -> bytes:
    with _deb_tar(deb_file, part) as tar:
        f = tar.extractfile("." + path)
        assert f is not None, path
        return f.read()


def _deb_control(deb_file: Path, name: str) -> str:
    return _deb_member(deb_file, "/" + name, "--ctrl-tarfile").decode()


def _deb_field(deb_file: Path, field: str) -> str:
    return _run("dpkg-deb", "-f", deb_file, field).stdout.strip()


def _rpm_query(rpm_file: Path, *args: str) -> str:
    proc = _run("rpm", "-qp", *args, rpm_file)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


# ---- .deb ---------------------------------------------------------------------------------------------


def test_deb_is_lintian_clean(deb):
    _, log = deb
    assert "lintian: clean" in log, log


def test_deb_version_and_dependencies(deb):
    deb_file, _ = deb
    version = _project()["version"]
    assert _deb_field(deb_file, "Version").startswith(f"{version}-")
    assert deb_file.name == f"pyetcd_{_deb_field(deb_file, 'Version')}_all.deb"
    assert _deb_field(deb_file, "Architecture") == "all"
    depends = {d.strip().split()[0] for d in _deb_field(deb_file, "Depends").split(",")}
    for dep in ("python3-h11", "python3-yaml", "python3-cryptography", "python3-sdnotify", "python3-systemd",
                "python3-pyroute2", "python3-bcrypt", "python3-prometheus-client", "python3:any"):
        assert dep in depends, depends


def test_deb_contents(deb):
    deb_file, _ = deb
    paths = _deb_paths(deb_file)
    assert "/usr/lib/python3/dist-packages/pyetcd/__init__.py" in paths
    assert "/usr/lib/python3/dist-packages/pyetcd/cli/daemon.py" in paths
    for script in _project()["scripts"]:
        assert f"/usr/bin/{script}" in paths
        assert f"/usr/share/man/man1/{script}.1.gz" in paths
    for unit in _units():
        assert f"/lib/systemd/system/{unit}" in paths
    assert "/usr/lib/sysusers.d/pyetcd.conf" in paths
    # made by postinst with its owner and mode; dpkg never owns it, so remove/purge leave it alone
    assert "/var/lib/pyetcd" not in paths
    assert not [p for p in paths if "__pycache__" in p or p.endswith(".pyc") or "/tests/" in p]
    assert _deb_member(deb_file, "/etc/pyetcd/pyetcd.yaml") == (PACKAGING / "pyetcd.yaml").read_bytes()
    assert _deb_member(deb_file, "/etc/pyetcd/locksmith.conf") == (PACKAGING / "locksmith.conf").read_bytes()
    for unit in _units():
        assert _deb_member(deb_file, f"/lib/systemd/system/{unit}") == (ROOT / "units" / unit).read_bytes()
    assert b"\nu pyetcd " in b"\n" + _deb_member(deb_file, "/usr/lib/sysusers.d/pyetcd.conf")


def test_deb_conffile_and_maintainer_scripts(deb):
    deb_file, _ = deb
    assert sorted(_deb_control(deb_file, "conffiles").split()) == ["/etc/pyetcd/locksmith.conf",
                                                                   "/etc/pyetcd/pyetcd.yaml"]
    postinst = _deb_control(deb_file, "postinst")
    assert "systemd-sysusers pyetcd.conf" in postinst and "useradd --system" in postinst
    assert "install -d -o pyetcd -g pyetcd -m 0700 /var/lib/pyetcd" in postinst
    for unit in _units():
        assert f"deb-systemd-helper enable '{unit}'" in postinst
        assert f"deb-systemd-invoke $_dh_action '{unit}'" in postinst
    # starting is only tried when systemd is PID 1, so a chroot/image build does not fail
    assert "if [ -d /run/systemd/system ]; then" in postinst
    postrm = _deb_control(deb_file, "postrm")
    # purge keeps the member's data and the account owning it
    assert not re.search(r"\brm(dir)?\b[^\n]*/var/lib/pyetcd", postrm), postrm
    assert not re.search(r"\b(deluser|userdel|groupdel|delgroup)\b", postrm), postrm


# ---- .rpm ---------------------------------------------------------------------------------------------


def test_rpm_is_rpmlint_clean(rpm):
    _, log = rpm
    assert "rpmlint: clean" in log, log


def test_rpm_version_and_dependencies(rpm):
    rpm_file, _ = rpm
    assert _rpm_query(rpm_file, "--qf", "%{VERSION} %{ARCH}") == f"{_project()['version']} noarch"
    requires = _rpm_query(rpm_file, "--requires")
    for dep in ("python3-h11", "python3-pyyaml", "python3-cryptography", "python3-systemd", "python3-pyroute2",
                "python3-bcrypt", "python3-prometheus_client", "python(abi) = 3."):
        assert dep in requires, requires
    assert "sdnotify" not in requires, "sdnotify is not packaged for Fedora: it must stay a weak dependency"
    assert "python3-sdnotify" in _rpm_query(rpm_file, "--recommends")


def test_rpm_contents(rpm):
    rpm_file, _ = rpm
    listing = _rpm_query(rpm_file, "--qf", "[%{FILENAMES} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILEMODES:perms}\n]")
    files = {line.split()[0]: line.split()[1:] for line in listing.splitlines()}
    sitelib = [p for p in files if re.fullmatch(r"/usr/lib/python3\.\d+/site-packages/pyetcd/__init__\.py", p)]
    assert sitelib, sorted(files)
    for script in _project()["scripts"]:
        assert f"/usr/bin/{script}" in files
        assert f"/usr/share/man/man1/{script}.1.gz" in files
    for unit in _units():
        assert f"/usr/lib/systemd/system/{unit}" in files
    assert "/usr/lib/sysusers.d/pyetcd.conf" in files
    assert files["/var/lib/pyetcd"] == ["pyetcd:pyetcd", "drwx------"]
    assert sorted(_rpm_query(rpm_file, "--configfiles").split()) == ["/etc/pyetcd/locksmith.conf",
                                                                     "/etc/pyetcd/pyetcd.yaml"]
    assert "%config(noreplace)" in (PACKAGING / "rpm" / "pyetcd.spec").read_text()
    assert not [p for p in files if "__pycache__" in p or "/tests/" in p]
    scripts = _rpm_query(rpm_file, "--scripts")
    assert "systemd-sysusers --replace=/usr/lib/sysusers.d/pyetcd.conf" in scripts
    assert "useradd -r -g pyetcd -d /var/lib/pyetcd" in scripts
    for unit in _units():
        assert unit in scripts


# ---- both: whatever pyproject.toml and units/ declare is packaged --------------------------------------


def test_new_scripts_and_units_are_picked_up(tmp_path):
    tree = tmp_path / "tree"
    shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(
        ".git", ".venv", "dist", "data", "__pycache__", ".pytest_cache", ".hypothesis", ".ruff_cache",
        "*.egg-info", "results"))
    pyproject = tree / "pyproject.toml"
    text = pyproject.read_text()
    assert '[project.scripts]\n' in text
    pyproject.write_text(text.replace("[project.scripts]\n", '[project.scripts]\npyetcd-extra = "pyetcd.cli.daemon:main"\n'))
    (tree / "units" / "pyetcd-extra.timer").write_text(
        "[Unit]\nDescription=extra\n\n[Timer]\nOnCalendar=daily\nUnit=pyetcd.service\n\n[Install]\nWantedBy=timers.target\n")
    (tree / "units" / "README").write_text("not a unit\n")
    assert _units(tree) == sorted([*_units(), "pyetcd-extra.timer"])

    deb_file, _ = _build(tree / "packaging" / "build-deb.sh", tmp_path / "dist", lint=False)
    paths = _deb_paths(deb_file)
    assert {"/usr/bin/pyetcd-extra", "/usr/share/man/man1/pyetcd-extra.1.gz",
            "/lib/systemd/system/pyetcd-extra.timer"} <= paths
    assert "/lib/systemd/system/README" not in paths
    assert "deb-systemd-helper enable 'pyetcd-extra.timer'" in _deb_control(deb_file, "postinst")

    rpm_file, _ = _build(tree / "packaging" / "build-rpm.sh", tmp_path / "dist", lint=False)
    files = set(_rpm_query(rpm_file, "--list").split())
    assert {"/usr/bin/pyetcd-extra", "/usr/share/man/man1/pyetcd-extra.1.gz",
            "/usr/lib/systemd/system/pyetcd-extra.timer"} <= files
    assert "/usr/lib/systemd/system/README" not in files
    assert "pyetcd-extra.timer" in _rpm_query(rpm_file, "--scripts")


# ---- real installs into a throwaway overlay of this machine ---------------------------------------------


@pytest.mark.parametrize("kind", ["deb", "rpm"])
def test_install_in_scratch_root(kind, request):
    package, _ = request.getfixturevalue(kind)
    proc = _run(PACKAGING / "check-install.sh", package, timeout=600)
    if proc.returncode == 77:
        pytest.skip(proc.stderr.strip() or "no overlay/namespaces here")
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    assert "0 failure(s)" in proc.stdout
