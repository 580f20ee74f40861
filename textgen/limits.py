"""How much memory this process may still use, and the one check every size goes through before it is allocated.

The figure is the smallest of what the machine has free (MemAvailable), what the process's cgroup
still allows and what its address-space and data limits (``ulimit -v``, ``ulimit -d``) leave.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

from textgen.errors import LimitError

_PROC = Path("/proc")
_CGROUP = Path("/sys/fs/cgroup")


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except (OSError, ValueError):
        return None
    return int(text) if text.isdigit() else None


def _meminfo_available() -> int | None:
    try:
        for line in (_PROC / "meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _stat_value(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key and value.strip().isdigit():
                return int(value)
    except OSError:
        pass
    return 0


def _cgroup_available() -> int | None:
    """What the tightest memory limit among this process's cgroup and its parents leaves (v2 or v1)."""
    try:
        lines = (_PROC / "self" / "cgroup").read_text().splitlines()
    except OSError:
        return None
    best = None
    for line in lines:
        if line.count(":") < 2:
            continue
        _, controllers, relative = line.split(":", 2)
        if controllers == "":  # cgroup v2
            base, limit_name, usage_name, cache = _CGROUP, "memory.max", "memory.current", "inactive_file"
        elif "memory" in controllers.split(","):
            base, limit_name, usage_name, cache = _CGROUP / "memory", "memory.limit_in_bytes", \
                "memory.usage_in_bytes", "total_inactive_file"
        else:
            continue
        folder = base / relative.lstrip("/")
        while True:
            limit, usage = _read_int(folder / limit_name), _read_int(folder / usage_name)
            if limit is not None and usage is not None and limit < 1 << 60:
                # reclaimable page cache counts as usage but does not stop an allocation
                left = max(0, limit - usage + _stat_value(folder / "memory.stat", cache))
                best = left if best is None else min(best, left)
            if folder == base or base not in folder.parents:
                break
            folder = folder.parent
    return best


def _status_value(key: str) -> int | None:
    try:
        for line in (_PROC / "self" / "status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _rlimit_available() -> int | None:
    """What ``ulimit -v`` (address space) and ``ulimit -d`` (data) leave beyond what the process already uses."""
    best = None
    for limit_kind, used_key in ((resource.RLIMIT_AS, "VmSize"), (resource.RLIMIT_DATA, "VmData")):
        soft, _ = resource.getrlimit(limit_kind)
        if soft == resource.RLIM_INFINITY:
            continue
        used = _status_value(used_key) or 0
        left = max(0, soft - used)
        best = left if best is None else min(best, left)
    return best


def available_memory() -> int:
    """Bytes this process can still allocate without swapping or being stopped by a limit."""
    figures = [value for value in (_meminfo_available(), _cgroup_available(), _rlimit_available()) if value is not None]
    return min(figures) if figures else 1 << 62


def format_bytes(size: float) -> str:
    """``size`` bytes as a short human figure: 512 B, 3.2 MiB, 1.5 TiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(size) < 1024 or unit == "PiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} EiB"


def check_memory(needed: int, what: str, fix: str) -> None:
    """LimitError unless ``needed`` bytes fit in `available_memory`, saying ``what`` needs them and ``fix``."""
    available = available_memory()
    if needed > available:
        raise LimitError(f"{what} would need about {format_bytes(needed)} of memory and only {format_bytes(available)} "
                         f"is available; {fix}")
