"""Figures (pareco.plots): one panel per cost, fronts drawn as the error a budget buys, widths
over the full network's sizes, and files written atomically."""

import pytest

from pareco.plots import Curve, WidthLine, fronts_figure, plot_fronts, plot_widths, widths_figure


def test_fronts_are_steps_with_a_dotted_tail_one_panel_per_cost(tmp_path):
    pareco = Curve("pareco", [0.2, 0.5, 0.9], [0.3, 0.2, 0.1])
    slim = Curve("slim", [0.3, 1.0], [0.25, 0.12])
    panels = {"flops": [pareco, slim], "energy": [Curve("pareco", [0.4, 1.0], [0.2, 0.1])]}
    fig = fronts_figure(panels, title="a run")
    flops, energy = fig.axes
    assert flops.get_xlabel() == "FLOPs ratio" and energy.get_xlabel() == "energy ratio"
    solid = [ln for ln in flops.get_lines() if ln.get_linestyle() == "-"]
    dotted = [ln for ln in flops.get_lines() if ln.get_linestyle() == ":"]
    assert [ln.get_drawstyle() for ln in solid] == ["steps-post", "steps-post"]
    assert list(solid[0].get_ydata()) == pytest.approx([30.0, 20.0, 10.0])  # in percent
    # only the curve that stops short of the full cost gets the flat tail, at its last error
    assert len(dotted) == 1 and list(dotted[0].get_xdata()) == [0.9, 1.0]
    assert list(dotted[0].get_ydata()) == pytest.approx([10.0, 10.0])
    assert dotted[0].get_color() == solid[0].get_color()
    assert not [ln for ln in energy.get_lines() if ln.get_linestyle() == ":"]
    assert [t.get_text() for t in flops.get_legend().get_texts()] == ["pareco", "slim"]
    path = plot_fronts(panels, tmp_path / "front.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_widths_are_lines_over_the_full_networks_bars(tmp_path):
    groups, sizes = ["stem", "layer1", "layer2"], [16, 32, 64]
    lines = [WidthLine("a", [8, 16, 40]), WidthLine("b", [16, 32, 64])]
    ax = widths_figure(groups, sizes, lines).axes[0]
    assert [b.get_height() for b in ax.patches] == sizes
    drawn = ax.get_lines()
    assert [list(ln.get_ydata()) for ln in drawn] == [[8, 16, 40], [16, 32, 64]]
    xs = [list(ln.get_xdata()) for ln in drawn]
    assert xs[0][0] < 0 < xs[1][0]  # side by side, so equal channels stay visible
    assert [t.get_text() for t in ax.get_xticklabels()] == groups
    assert plot_widths(groups, sizes, lines, tmp_path / "w.png").stat().st_size > 0


def test_a_failed_write_leaves_the_previous_figure(tmp_path):
    path = tmp_path / "front.png"
    plot_fronts({"flops": [Curve("a", [0.5, 1.0], [0.2, 0.1])]}, path)
    before = path.read_bytes()
    bad = tmp_path / "front.notaformat"
    with pytest.raises(ValueError):
        plot_fronts({"flops": [Curve("a", [0.5], [0.2])]}, bad)
    assert not bad.exists() and path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["front.png"]
