import resource
import subprocess
import sys

import pytest

from textgen.errors import LimitError
from textgen.limits import available_memory, check_memory, format_bytes


def test_available_memory_is_a_plausible_figure():
    with open("/proc/meminfo") as meminfo:
        total = next(int(line.split()[1]) * 1024 for line in meminfo if line.startswith("MemTotal:"))
    assert 0 < available_memory() <= total


def test_a_size_beyond_it_is_refused_in_one_line_saying_what_and_how_much():
    with pytest.raises(LimitError) as caught:
        check_memory(available_memory() * 4, "the thing", "ask for less")
    message = str(caught.value)
    assert message.startswith("the thing would need about ") and message.endswith("; ask for less")
    assert "\n" not in message
    check_memory(1024, "a small thing", "never said")


def test_an_address_space_limit_counts():
    """ulimit -v: what is left of the limit beyond what the process already maps."""
    probe = ("import resource; resource.setrlimit(resource.RLIMIT_AS, (3_000_000_000, 3_000_000_000)); "
             "from textgen.limits import available_memory; print(available_memory())")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert 500_000_000 < int(result.stdout) < 3_000_000_000
    assert resource.getrlimit(resource.RLIMIT_AS)[0] == resource.RLIM_INFINITY  # ours is untouched


@pytest.mark.parametrize("size, text", [(512, "512 B"), (3 << 20, "3.0 MiB"), (1.5 * (1 << 40), "1.5 TiB")])
def test_sizes_are_written_for_people(size, text):
    assert format_bytes(size) == text
