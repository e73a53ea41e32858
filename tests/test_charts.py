"""Charts are drawn with matplotlib, headless, as PNG and SVG: every series and bar is labelled in the file."""

from __future__ import annotations

import torch
from PIL import Image

from diffdis.utils.charts import bar_chart, confusion_figure, line_chart, save


def test_line_chart_with_error_bars_on_a_log_axis(tmp_path):
    series = {"diffdis": {1: 80.0, 2: 81.5, 50: 82.0}, "clip": {1: 78.0, 50: 78.0}}
    errors = {"diffdis": {1: 1.0, 2: 0.5, 50: 0.7}}
    path = save(line_chart([(series, "top-1 by steps")], "steps", "%", errors=errors), tmp_path / "steps.png")
    assert Image.open(path).size[0] > 400
    svg = path.with_suffix(".svg").read_text()
    assert all(name in svg for name in ("diffdis", "clip", "top-1 by steps"))
    figure = line_chart([(series, "a"), ({"gen": {100: 3.0, 200: 4.0}}, "b")], "step", "%", log_x=False)
    assert len(figure.axes) == 2 and figure.axes[1].get_xscale() == "linear"


def test_bars_and_confusion(tmp_path):
    bars = {"fashion seen: diffdis": (84.0, 1.2), "fashion seen: clip": (86.8, 0.4)}
    figure = bar_chart(bars, "accuracy")
    assert [t.get_text() for t in figure.axes[0].get_yticklabels()] == list(bars)  # top to bottom as given
    confusion = torch.tensor([[8, 2], [1, 9]])
    figure = confusion_figure(confusion, ("dress", "bag"))
    assert figure.axes[0].get_title() == "top-1 85.00% of 20 images"
    cells = sorted(t.get_text() for t in figure.axes[0].texts)
    assert cells == ["10", "20", "80", "90"]  # each row's share in percent
    assert save(figure, tmp_path / "c.png").with_suffix(".svg").exists()
