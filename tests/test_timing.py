"""Alternating timing: the contenders interleave, each gets its median and range, and per-item scaling."""

from diffdis.utils.timing import alternating_times, per_item


def test_contenders_alternate_and_each_gets_its_rounds():
    calls = []
    times = alternating_times({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=3, warmup=1)
    assert calls == ["a", "b"] * 4  # one warm-up round, then three timed ones, A B A B ...
    for stats in times.values():
        assert stats["rounds"] == 3 and 0 <= stats["min"] <= stats["median"] <= stats["max"]


def test_per_item_scales_every_figure():
    stats = {"median": 2.0, "min": 1.0, "max": 4.0, "rounds": 5}
    assert per_item(stats, 4, 1000, "median_ms_per_image") == {
        "median_ms_per_image": 500.0,
        "min": 250.0,
        "max": 1000.0,
        "rounds": 5,
    }
