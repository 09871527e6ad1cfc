"""Sharing the cores: a run trains with the cores that other busy processes leave free."""

import subprocess
import sys
import time

import pytest
import torch

from trainlab.engine.threads import CPUThreads, OtherLoad, threads_for, usable_cores

BUSY = "import time\nend = time.time() + {seconds}\nwhile time.time() < end: pass"


def test_threads_go_down_when_half_a_core_is_taken_and_up_only_when_it_is_free_again():
    assert threads_for(free_cores=2.0, current=2, ceiling=2) == 2
    assert threads_for(free_cores=1.6, current=2, ceiling=2) == 2
    assert threads_for(free_cores=1.4, current=2, ceiling=2) == 1
    assert threads_for(free_cores=0.1, current=2, ceiling=2) == 1  # never below one
    assert threads_for(free_cores=1.7, current=1, ceiling=2) == 1  # not yet: no flapping at the boundary
    assert threads_for(free_cores=1.85, current=1, ceiling=2) == 2
    assert threads_for(free_cores=7.9, current=1, ceiling=4) == 4  # never above the ceiling


def test_other_load_sees_a_busy_process_and_not_our_own_work():
    load = OtherLoad()
    end = time.monotonic() + 0.6
    while time.monotonic() < end:  # our own busy time is not "others"
        pass
    assert load.cores() < 0.5
    busy = subprocess.Popen([sys.executable, "-c", BUSY.format(seconds=3)])
    try:
        time.sleep(1.0)
        load.cores()
        time.sleep(0.8)
        assert load.cores() > 0.6
    finally:
        busy.kill()
        busy.wait()


@pytest.mark.skipif(usable_cores() < 2, reason="needs two cores")
def test_a_busy_neighbour_takes_a_thread_away_and_gives_it_back():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    busy = subprocess.Popen([sys.executable, "-c", BUSY.format(seconds=30)])
    try:
        threads = CPUThreads("auto", interval=0.5)
        assert threads.ceiling == 2
        deadline = time.monotonic() + 10
        while torch.get_num_threads() != 1 and time.monotonic() < deadline:
            time.sleep(0.55)
            threads.check()
        assert torch.get_num_threads() == 1
        busy.kill()
        busy.wait()
        deadline = time.monotonic() + 10
        while torch.get_num_threads() != 2 and time.monotonic() < deadline:
            time.sleep(0.55)
            threads.check()
        assert torch.get_num_threads() == 2
        summary = threads.summary()
        assert summary["mode"] == "auto" and summary["changes"] >= 2 and set(summary["share"]) <= {"1", "2"}
    finally:
        busy.kill()
        busy.wait()
        torch.set_num_threads(before)


def test_a_fixed_thread_count_is_kept_and_restored_afterwards():
    before = torch.get_num_threads()
    threads = CPUThreads(1)
    assert torch.get_num_threads() == 1 and threads.summary()["mode"] == "fixed"
    threads.check()
    assert torch.get_num_threads() == 1
    threads.restore()
    assert torch.get_num_threads() == before
