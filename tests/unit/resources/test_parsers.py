"""Parsers for /proc, cgroup, os-release and nvidia-smi text, on samples from several machine kinds."""

from __future__ import annotations

import pytest

from agora.models.capability import GiB, MiB
from agora.resources.parsers import (
    CgroupMount,
    GpuInfo,
    cfs_millis,
    cgroup_dir,
    parse_cpu_max,
    parse_cpuinfo,
    parse_meminfo,
    parse_memory_limit,
    parse_mountinfo,
    parse_nvidia_smi,
    parse_os_release,
    parse_proc_cgroup,
)

NVIDIA_SMI = """NVIDIA H100 80GB HBM3, 81559 MiB, 550.54.15
NVIDIA H100 80GB HBM3, 81559 MiB, 550.54.15
"""

X86_CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model\t\t: 207
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu vme sse4_1 sse4_2 avx avx2 avx512f aes lahf_lm
processor\t: 1
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu vme sse4_1 sse4_2 avx avx2 avx512f aes lahf_lm
"""

ARM_CPUINFO = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics sve
CPU implementer\t: 0x41
"""


def test_nvidia_smi_two_gpus() -> None:
    assert parse_nvidia_smi(NVIDIA_SMI) == [
        GpuInfo(0, "nvidia", "NVIDIA H100 80GB HBM3", 81559 * MiB, "550.54.15"),
        GpuInfo(1, "nvidia", "NVIDIA H100 80GB HBM3", 81559 * MiB, "550.54.15"),
    ]


def test_nvidia_smi_variants() -> None:
    text = "Tesla T4, 15360, 535.104.05\n\n\nOrin (nvgpu), [N/A], [N/A]\ngarbage line\n"
    assert parse_nvidia_smi(text) == [
        GpuInfo(0, "nvidia", "Tesla T4", 15 * GiB, "535.104.05"),
        GpuInfo(1, "nvidia", "Orin (nvgpu)", 0, None),
    ]
    assert parse_nvidia_smi("") == []
    assert parse_nvidia_smi("No devices were found\n") == []


def test_cpuinfo_x86() -> None:
    model, flags = parse_cpuinfo(X86_CPUINFO)
    assert model == "Intel(R) Xeon(R) Processor"
    assert flags == {"sse4_1", "sse4_2", "avx", "avx2", "avx512f", "aes"}


def test_cpuinfo_arm_names_neon() -> None:
    model, flags = parse_cpuinfo(ARM_CPUINFO)
    assert model is None
    assert {"asimd", "neon", "sve", "aes", "sha2"} <= flags
    assert "evtstrm" not in flags


def test_meminfo() -> None:
    text = "MemTotal:       24684092 kB\nMemFree:        22094236 kB\nMemAvailable:   24199880 kB\n"
    assert parse_meminfo(text) == (24684092 * 1024, 24199880 * 1024)
    assert parse_meminfo("MemTotal: 1024 kB\n") == (1024 * 1024, None)
    with pytest.raises(ValueError):
        parse_meminfo("nonsense")


def test_proc_cgroup_v1_and_v2() -> None:
    v1 = "4:memory:/process_api/d38\n2:cpu,cpuacct:/\n0::/\n"
    assert parse_proc_cgroup(v1) == {"memory": "/process_api/d38", "cpu": "/", "cpuacct": "/", "": "/"}
    assert parse_proc_cgroup("0::/user.slice/app.scope\n") == {"": "/user.slice/app.scope"}


def test_mountinfo_finds_cgroup_mounts_with_their_root() -> None:
    text = (
        "30 25 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n"
        "35 30 0:31 / /sys/fs/cgroup/memory rw,relatime shared:14 - cgroup cgroup rw,memory\n"
        "36 30 0:32 /docker/abc /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
        "37 30 0:33 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
        "38 25 8:1 / / rw - ext4 /dev/sda1 rw\n"
    )
    assert parse_mountinfo(text) == [
        CgroupMount("/sys/fs/cgroup/memory", "/", 1, frozenset({"memory"})),
        CgroupMount("/sys/fs/cgroup/cpu,cpuacct", "/docker/abc", 1, frozenset({"cpu", "cpuacct"})),
        CgroupMount("/sys/fs/cgroup/unified", "/", 2, frozenset()),
    ]


def test_cgroup_dir_maps_paths_under_the_mounted_root() -> None:
    m = CgroupMount("/sys/fs/cgroup", "/", 2, frozenset())
    assert cgroup_dir(m, "/user.slice/a.scope") == "/sys/fs/cgroup/user.slice/a.scope"
    assert cgroup_dir(m, "/") == "/sys/fs/cgroup"
    inner = CgroupMount("/sys/fs/cgroup/cpu", "/docker/abc", 1, frozenset({"cpu"}))
    assert cgroup_dir(inner, "/docker/abc") == "/sys/fs/cgroup/cpu"
    assert cgroup_dir(inner, "/docker/abc/sub") == "/sys/fs/cgroup/cpu/sub"
    assert cgroup_dir(inner, "/elsewhere") == "/sys/fs/cgroup/cpu"  # namespaced view


def test_cpu_limits() -> None:
    assert parse_cpu_max("200000 100000\n") == 2000
    assert parse_cpu_max("150000 100000") == 1500
    assert parse_cpu_max("max 100000") is None
    assert cfs_millis(-1, 100000) is None
    assert cfs_millis(50000, 100000) == 500


def test_memory_limits() -> None:
    assert parse_memory_limit("max\n") is None
    assert parse_memory_limit("9223372036854771712\n") is None  # v1 "unlimited"
    assert parse_memory_limit("2147483648\n") == 2 * GiB


def test_os_release() -> None:
    text = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n# comment\n\nVERSION_ID="12"\n'
    assert parse_os_release(text) == {
        "PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)",
        "ID": "debian",
        "VERSION_ID": "12",
    }
