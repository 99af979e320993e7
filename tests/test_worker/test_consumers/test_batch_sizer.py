from __future__ import annotations

from worker.consumers.live import BatchSizer


def test_the_first_batch_is_small_to_measure_the_machine() -> None:
    assert BatchSizer(ceiling=64, budget_s=10).next_size() == 4
    assert BatchSizer(ceiling=2, budget_s=10).next_size() == 2


def test_batches_fit_the_time_budget_at_the_measured_cost() -> None:
    sizer = BatchSizer(ceiling=1000, budget_s=10)
    sizer.observe(events=4, seconds=2.0)  # 0.5 s an event
    assert sizer.next_size() == 20
    sizer.observe(events=20, seconds=20.0)  # slower now: 1 s an event
    assert sizer.next_size() == 15  # 0.7 * 0.5 + 0.3 * 1.0 = 0.65 s an event: 10 / 0.65
    sizer.observe(events=0, seconds=0.0)  # an empty batch teaches nothing
    assert sizer.next_size() == 15


def test_batches_stay_between_one_event_and_the_ceiling() -> None:
    slow, fast = BatchSizer(ceiling=64, budget_s=1), BatchSizer(ceiling=64, budget_s=10)
    slow.observe(events=1, seconds=30)
    fast.observe(events=100, seconds=0.01)
    assert (slow.next_size(), fast.next_size()) == (1, 64)
