"""Work in forks of its own: answers, order, errors."""

import os
import time

import pytest

from model.forks import run_forked


def test_every_answer_comes_back_with_its_index():
    got = {}
    run_forked(list(range(7)), lambda x: x * x, 3, got.__setitem__)
    assert got == {i: i * i for i in range(7)}


def test_every_item_runs_in_a_process_of_its_own_forked_after_the_earlier_answers():
    """With one job at a time, the third item is forked once the first two answered: it sees
    what the parent made of them, in a process of its own."""
    seen, answers = {}, {}

    def done(index, answer):
        seen[index], answers[index] = answer[0], answer

    run_forked(["a", "b", "c"], lambda item: (os.getpid(), dict(seen)), 1, done)
    assert len({answers[i][0] for i in range(3)} | {os.getpid()}) == 4
    assert answers[2][1] == {0: answers[0][0], 1: answers[1][0]}


def test_a_childs_exception_is_raised_in_the_parent():
    def work(x):
        if x == 2:
            raise ValueError("two")
        return x

    with pytest.raises(ValueError, match="two"):
        run_forked([1, 2, 3], work, 1, lambda i, a: None)


def test_a_child_that_dies_without_an_answer_is_an_error():
    with pytest.raises(RuntimeError, match="died without an answer"):
        run_forked([1], lambda x: os._exit(3), 1, lambda i, a: None)


def test_a_stop_raised_by_tick_kills_the_children_still_running(tmp_path):
    def work(item):
        (tmp_path / str(os.getpid())).touch()
        time.sleep(60)

    def tick():
        if len(list(tmp_path.iterdir())) == 2:
            raise KeyboardInterrupt

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_forked([1, 2], work, 2, lambda i, a: None, tick=tick)
    assert time.monotonic() - started < 30
    for pid in (int(f.name) for f in tmp_path.iterdir()):  # killed and reaped
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)

