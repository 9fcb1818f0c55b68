"""models/runtime.py: the thread policy for a shared machine."""

from __future__ import annotations

from models.runtime import MAX_AUTO_THREADS, choose_threads, thread_env


def test_small_machines_get_one_thread_whatever_the_load():
    assert choose_threads(cores=1, load=0.0) == 1
    assert choose_threads(cores=2, load=0.0) == 1
    assert choose_threads(cores=2, load=7.0) == 1


def test_larger_machines_get_the_cores_not_already_busy():
    assert choose_threads(cores=16, load=3.2) == MAX_AUTO_THREADS  # 13 free, capped
    assert choose_threads(cores=8, load=3.4) == 5
    assert choose_threads(cores=8, load=3.6) == 4
    assert choose_threads(cores=8, load=20.0) == 1  # oversubscribed: one thread, never zero


def test_an_explicit_count_wins_but_not_beyond_the_usable_cores():
    assert choose_threads(4, cores=16, load=15.0) == 4
    assert choose_threads(4, cores=2, load=0.0) == 2


def test_thread_env_sets_passive_waiting_and_counts_without_overriding_the_user():
    env = {"OMP_NUM_THREADS": "3"}
    n = thread_env(1, environ=env)
    assert n == 1
    assert env["OMP_WAIT_POLICY"] == "PASSIVE" and env["KMP_BLOCKTIME"] == "0"
    assert env["OMP_NUM_THREADS"] == "3"  # the user's choice stays
    assert env["MKL_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == "1"
