"""The rollout benchmark's timing helpers: every engine is timed once per round, in an order that rotates."""

from bench.rollout import interleaved, spread


def test_interleaved_rotates_the_order_and_times_each_once_per_round():
    calls = []
    fns = {k: (lambda k=k: calls.append(k)) for k in "abc"}
    out = interleaved(fns, rounds=4)
    assert calls[:3] == ["a", "b", "c"]  # the warm-up
    assert calls[3:] == ["a", "b", "c", "b", "c", "a", "c", "a", "b", "a", "b", "c"]
    assert {k: len(v) for k, v in out.items()} == {"a": 4, "b": 4, "c": 4}
    assert all(t >= 0 for v in out.values() for t in v)


def test_spread():
    assert spread([3.0, 1.0, 2.0, 10.0]) == {"median": 2.5, "min": 1.0, "max": 10.0, "n": 4}
