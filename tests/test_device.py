"""Threads, the allocator and page release: one thread per physical core, freed step memory kept
for the next step, and a memory map's touched pages handed back."""

import os
import subprocess
import sys

import pytest
import torch

from minigpt.device import default_threads, physical_cores


def test_hyper_threads_of_one_core_count_once(tmp_path):
    # Four logical CPUs on two cores (0 and 2 share one, 1 and 3 the other), as Linux lists them.
    for cpu, siblings in enumerate(["0,2", "1,3", "0,2", "1,3"]):
        (tmp_path / f"cpu{cpu}" / "topology").mkdir(parents=True)
        (tmp_path / f"cpu{cpu}" / "topology" / "thread_siblings_list").write_text(siblings + "\n")
    assert physical_cores([0, 1, 2, 3], tmp_path) == 2
    assert physical_cores([0, 2], tmp_path) == 1  # an affinity mask of one core's two threads
    assert physical_cores([0, 1, 2], tmp_path / "nowhere") == 3  # no topology: logical CPUs


def test_default_threads_follow_the_cores_this_process_may_use():
    cores = physical_cores()
    assert 1 <= cores <= (os.cpu_count() or 1)
    assert default_threads() == cores


ALLOCATION_ROUNDS = """
import ctypes, ctypes.util, resource, torch
from minigpt.device import keep_freed_memory
def faults_per_round():  # a step's worth of activations: 30 MB in 3 MB tensors, written, freed
    def one_round():
        tensors = [torch.ones(3 << 20, dtype=torch.uint8) for _ in range(10)]
        del tensors
    one_round(); one_round()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        one_round()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10
libc = ctypes.CDLL(ctypes.util.find_library("c"))
if not hasattr(libc, "gnu_get_libc_version"):
    print("not-glibc"); raise SystemExit
# glibc's starting values, pinned (it moves them as it sees large frees, depending on history):
libc.mallopt(-3, 128 << 10); libc.mallopt(-1, 128 << 10)  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD
print(faults_per_round(), keep_freed_memory(), faults_per_round())
"""
PAGES_PER_ROUND = 10 * (3 << 20) // 4096  # what a round writes, in 4 KB pages


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator, on Linux")
def test_keep_freed_memory_stops_page_faults_between_steps():
    out = subprocess.run([sys.executable, "-c", ALLOCATION_ROUNDS], capture_output=True,
                         text=True, check=True).stdout.split()
    if out == ["not-glibc"]:
        pytest.skip("the C library is not glibc")
    default, applied, kept = float(out[0]), out[1], float(out[2])
    assert applied == "True"
    # glibc's defaults hand each freed 3 MB block back to the kernel, so every round faults most
    # of its pages in again; kept in the heap, they are reused without a fault. (Relative to what
    # a round writes, so huge pages or another page size change both sides alike.)
    assert default > PAGES_PER_ROUND / 4
    assert kept < default / 10


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads Linux's RssFile")
def test_release_pages_returns_a_memory_maps_touched_pages(tmp_path):
    import numpy as np

    from minigpt.data import get_batch, release_pages

    def rss_file_kb() -> int:
        for line in open("/proc/self/status"):
            if line.startswith("RssFile:"):
                return int(line.split()[1])
        return 0

    path = tmp_path / "ids.bin"
    path.write_bytes(bytes(range(50)) * 1_000_000)  # 50 MB of token ids
    ids = np.memmap(path, dtype=np.uint8, mode="r")
    before = rss_file_kb()
    generator = torch.Generator().manual_seed(0)
    for _ in range(50):
        x, y = get_batch(ids, 16, 64, generator)
    assert torch.equal(x[:, 1:], y[:, :-1])
    grown = rss_file_kb() - before
    assert grown > 0  # the random windows mapped pages in
    release_pages(ids)
    assert rss_file_kb() - before < grown / 5  # and most of them are handed back
    x2, _ = get_batch(ids, 16, 64, torch.Generator().manual_seed(0))  # still readable, same data
    assert torch.equal(x2, get_batch(np.array(ids), 16, 64, torch.Generator().manual_seed(0))[0])
