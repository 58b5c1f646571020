"""A node's budget as a percentage of its memory limit (``--memory 75%``): the parsing
(`ramster.units.parse_budget`), the share it takes of a limit, and where that limit is read
(`ramster.cgroup`), on cgroup trees made in tmp_path as the kernel lays them out."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from ramster.cgroup import limit_files, limit_of, memory_limit
from ramster.errors import InvalidArgument
from ramster.units import Share, parse_budget

BUDGET_RULE = (
    "expected a whole number of bytes such as 4096, 64MiB or 768Mi, or a percentage of the "
    "memory limit above 0 and at most 100, such as 75%"
)
V1_UNLIMITED = "9223372036854771712\n"
HYBRID = "4:memory:/kubepods/pod1/ctr\n1:cpu,cpuacct:/kubepods/pod1/ctr\n0::/\n"


@pytest.mark.parametrize(
    ("text", "budget"),
    [
        ("768Mi", 768 << 20),
        ("4096", 4096),
        ("75%", Share("75%", Fraction(3, 4))),
        (" 62.5 % ", Share("62.5 %", Fraction(5, 8))),
        ("100%", Share("100%", Fraction(1))),
        ("0.5%", Share("0.5%", Fraction(1, 200))),
    ],
)
def test_a_budget_is_a_size_or_a_percentage(text: str, budget: int | Share) -> None:
    assert parse_budget(text) == budget


@pytest.mark.parametrize("text", ["0%", "100.1%", "150%", "-5%", "%", "75%%", "75 percent", "12x"])
def test_a_budget_that_is_neither_is_refused_naming_the_flag(text: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_budget(text)
    assert caught.value.message == f"memory {text!r} is invalid: {BUDGET_RULE}"


def test_a_share_of_a_limit_is_whole_bytes_rounded_down() -> None:
    assert Share("75%", Fraction(3, 4)).of(1 << 30) == 768 << 20
    assert Share("33.3%", Fraction(333, 1000)).of(1000) == 333
    assert Share("50%", Fraction(1, 2)).of(4097) == 2048


def test_a_share_of_no_limit_is_refused_naming_the_flag_and_the_percentage() -> None:
    with pytest.raises(InvalidArgument) as caught:
        Share("75%", Fraction(3, 4)).of(None)
    assert caught.value.message == (
        "memory '75%' is invalid: expected a size such as 768MiB: a percentage takes a share of "
        "this process's memory limit, and its cgroup sets none (v2 memory.max, v1 "
        "memory.limit_in_bytes)"
    )


@pytest.mark.parametrize(
    ("text", "limit"),
    [("max\n", None), ("1073741824\n", 1 << 30), (V1_UNLIMITED, None), ("4096", 4096)],
)
def test_limit_of_a_cgroup_file(text: str, limit: int | None) -> None:
    assert limit_of(text) == limit


def test_where_the_limit_is_read_on_v2_v1_and_a_hybrid_host() -> None:
    root = Path("/sys/fs/cgroup")
    assert limit_files("0::/kubepods/pod1/ctr\n", root) == [
        root / "kubepods/pod1/ctr/memory.max",
        root / "memory.max",
    ]
    # The memory controller on v1 wins over the (empty) v2 hierarchy beside it.
    assert limit_files(HYBRID, root) == [
        root / "memory/kubepods/pod1/ctr/memory.limit_in_bytes",
        root / "memory/memory.limit_in_bytes",
    ]
    assert limit_files("1:cpu:/\n", root) == []


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_memory_limit_of_a_v2_container_in_its_own_cgroup_namespace(tmp_path: Path) -> None:
    write(tmp_path / "proc", "0::/\n")
    write(tmp_path / "cg" / "memory.max", "1073741824\n")
    assert memory_limit(tmp_path / "proc", tmp_path / "cg") == 1 << 30


def test_memory_limit_of_a_v2_process_in_a_limited_cgroup(tmp_path: Path) -> None:
    write(tmp_path / "proc", "0::/system.slice/ramster.service\n")
    write(tmp_path / "cg" / "system.slice/ramster.service/memory.max", "536870912\n")
    assert memory_limit(tmp_path / "proc", tmp_path / "cg") == 512 << 20


def test_memory_limit_of_a_v1_container_whose_cgroup_is_mounted_at_the_root(
    tmp_path: Path,
) -> None:
    """Docker on v1 shows the host's path in /proc/self/cgroup but mounts the container's own
    cgroup as the hierarchy's root."""
    write(tmp_path / "proc", HYBRID)
    write(tmp_path / "cg" / "memory/memory.limit_in_bytes", "805306368\n")
    assert memory_limit(tmp_path / "proc", tmp_path / "cg") == 768 << 20


def test_no_memory_limit_without_one_or_without_cgroups(tmp_path: Path) -> None:
    write(tmp_path / "proc", HYBRID)
    write(tmp_path / "cg" / "memory/kubepods/pod1/ctr/memory.limit_in_bytes", V1_UNLIMITED)
    assert memory_limit(tmp_path / "proc", tmp_path / "cg") is None
    write(tmp_path / "v2" / "memory.max", "max\n")
    write(tmp_path / "proc2", "0::/\n")
    assert memory_limit(tmp_path / "proc2", tmp_path / "v2") is None
    assert memory_limit(tmp_path / "absent", tmp_path / "cg") is None
