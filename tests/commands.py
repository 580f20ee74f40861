"""Running the real `textgen` command in a child process, as a user's shell would, for the tests that need one:
faults, signals, kills and races; `run` for the in-process ones. Also an installed third-party plugin made
from `plugin_fixtures`."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from textgen.registry import ENTRY_POINT_GROUP

TESTS = Path(__file__).resolve().parent


def run(capsys, *argv: object) -> tuple[int, str, str]:
    """`textgen.cli.main(argv)` in this process: (exit status, stdout, stderr)."""
    from textgen.cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def textgen_command() -> list[str]:
    """The installed console script (as tests/test_cli.py finds it), else the module."""
    script = shutil.which("textgen", path=os.path.dirname(sys.executable)) or shutil.which("textgen")
    return [script] if script else [sys.executable, "-m", "textgen.cli"]


def environment(**extra: str) -> dict[str, str]:
    """The child's environment: offline, plus ``extra``."""
    return dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", **extra)


def textgen(*argv: object, timeout: float = 300, env: dict | None = None, **run) -> subprocess.CompletedProcess:
    """Run the real command and return what it did."""
    return subprocess.run([*textgen_command(), *map(str, argv)], capture_output=True, text=True, timeout=timeout,
                          env=env or environment(), check=False, **run)


def start(*argv: object, env: dict | None = None, **popen) -> subprocess.Popen:
    """Start the real command in the background (stdout discarded, stderr kept)."""
    popen.setdefault("stdout", subprocess.DEVNULL)
    popen.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen([*textgen_command(), *map(str, argv)], text=True, env=env or environment(), **popen)


def assert_one_error_line(result: subprocess.CompletedProcess, pattern: str = "") -> str:
    """Exit status 1, exactly one line on stderr saying `textgen: error: ...`, no traceback; returns the line."""
    err = result.stderr
    assert result.returncode == 1, (result.returncode, err)
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert err.startswith("textgen: error: ") and "Traceback" not in err, err
    assert re.search(pattern, err), (pattern, err)
    return err


def snapshot(folder: Path, links: bool = True) -> dict[str, tuple[bytes, int]]:
    """Every file under ``folder`` (hidden ones too) with its bytes and modification time; with ``links``
    False, links, FIFOs and devices by what they are (never read) rather than what they hold."""
    shot = {}
    for path in sorted(folder.rglob("*")):
        name = str(path.relative_to(folder))
        if path.is_symlink() or (not links and path.exists() and not path.is_file() and not path.is_dir()):
            shot[name] = (os.readlink(path).encode() if path.is_symlink() else b"special", path.lstat().st_mtime_ns)
        elif path.is_file():
            shot[name] = (path.read_bytes(), path.stat().st_mtime_ns)
    return shot


def plugin_environment(root: Path, entries: dict[str, str], distribution: str = "misbehaving-plugins",
                       version: str = "0.1", **extra: str) -> dict[str, str]:
    """An environment in which a child textgen finds ``entries`` (name -> "plugin_fixtures:Class") as an
    installed distribution: a real dist-info record on the child's path, as pip would leave it."""
    info = root / f"{distribution.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n")
    lines = "".join(f"{key} = {value}\n" for key, value in entries.items())
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}")
    path = os.pathsep.join([str(root), str(TESTS), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return environment(PYTHONPATH=path, **extra)


def wait_until(condition, timeout: float = 60, what: str = "the condition", interval: float = 0.01) -> None:
    """Poll ``condition()`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(interval)


def mount(*argv: str) -> bool:
    result = subprocess.run(["mount", *argv], capture_output=True, text=True, check=False)
    return result.returncode == 0


def unmount(target: Path) -> None:
    if subprocess.run(["umount", str(target)], capture_output=True, check=False).returncode != 0:
        subprocess.run(["umount", "-l", str(target)], capture_output=True, check=False)


@contextlib.contextmanager
def tmpfs(folder: Path, size: str):
    """A tmpfs of ``size`` mounted on ``folder`` for the block; skips the test where mounting is not allowed."""
    folder.mkdir()
    if not mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)):
        pytest.skip("cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN)")
    try:
        yield folder
    finally:
        unmount(folder)


def fill(folder: Path, leave: int = 0) -> None:
    """Write a file until the filesystem is full, then give back about ``leave`` bytes."""
    with open(folder / "filler", "wb", buffering=0) as stream, contextlib.suppress(OSError):
        while True:
            stream.write(b"\0" * 4096)
    if leave:
        size = (folder / "filler").stat().st_size
        os.truncate(folder / "filler", max(0, size - leave))


@contextlib.contextmanager
def as_another_user():
    """Run the block without root's right to read and write anything (as `nobody`), so that permissions bite
    (modules the block needs must be imported before it: nobody may not read the interpreter's own)."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@contextlib.contextmanager
def shared_folder():
    """A new folder in the system's temporary folder that `as_another_user` can reach (pytest's are private);
    removed afterwards, whatever modes the test left inside."""
    folder = Path(tempfile.mkdtemp(prefix="textgen-tests-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        for path in [folder, *folder.rglob("*")]:
            if not path.is_symlink():
                path.chmod(0o755)
        shutil.rmtree(folder)
