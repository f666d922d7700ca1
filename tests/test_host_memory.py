"""The training process's heap settings (agents/host_memory.py): glibc is told to keep freed blocks; another C
library is left alone; the online loop applies them."""

from __future__ import annotations

import gymnasium as gym
import pytest

from agents import host_memory, loop
from agents.base import Task
from agents.random import RandomAgent
from tests.conftest import SMALL


class FakeLibc:
    """A C library that records ``mallopt`` calls; ``glibc``: whether it has glibc's version call."""

    def __init__(self, glibc: bool) -> None:
        self.calls: list[tuple[int, int]] = []
        if glibc:
            self.gnu_get_libc_version = lambda: b"2.36"

    def mallopt(self, parameter: int, value: int) -> int:
        self.calls.append((parameter, value))
        return 1


@pytest.fixture
def fake_libc(monkeypatch):
    def install(glibc: bool) -> FakeLibc:
        libc = FakeLibc(glibc)
        monkeypatch.setattr(host_memory.ctypes, "CDLL", lambda name: libc)
        host_memory.keep_freed_memory.cache_clear()
        return libc

    yield install
    host_memory.keep_freed_memory.cache_clear()


def test_glibc_serves_blocks_up_to_32_mib_from_the_heap_and_keeps_what_is_freed(fake_libc):
    libc = fake_libc(glibc=True)
    assert host_memory.keep_freed_memory()
    assert libc.calls == [(-3, 32 * 2**20), (-1, 512 * 2**20)]  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD
    assert host_memory.keep_freed_memory() and len(libc.calls) == 2  # once per process


def test_another_c_library_is_left_as_it_is(fake_libc):
    libc = fake_libc(glibc=False)
    assert not host_memory.keep_freed_memory()
    assert libc.calls == []


def test_the_online_loop_keeps_freed_memory(monkeypatch):
    kept = []
    monkeypatch.setattr(loop, "keep_freed_memory", lambda: kept.append(True))
    env = gym.make_vec("FeedbackRec/News-v0", num_envs=2, vectorization_mode="vector_entry_point", **SMALL)
    loop.run_online(RandomAgent(Task.of(env)), env, total_steps=4, progress=False)
    assert kept == [True]
