"""The report figures' sizing rule: named print sizes, the smallest font, and what ``save`` writes."""
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bitsim.report import figures
from bitsim.report.figures.common import legend_below, legible, mosaic, sized_panels, texts, titled
from bitsim.report.figures.measured import fullest_run_per_gpu


def test_named_sizes_are_a_paper_column_a_page_and_a_16_by_9_slide():
    assert figures.figsize("column")[0] == 3.5
    assert figures.figsize("page")[0] == 7.2
    w, h = figures.figsize("slide")
    assert (w, h) == (13.33, 7.5) and abs(w / h - 16 / 9) < 0.01
    assert figures.figsize("page", 5.0) == (7.2, 5.0)


@pytest.mark.parametrize("size, height, words", [("poster", None, "column"), ("page", 0.0, "height"),
                                                 ("page", -1.0, "height")])
def test_a_bad_size_or_height_is_named(size, height, words):
    with pytest.raises(ValueError, match=words):
        figures.figsize(size, height)


def test_panels_and_mosaics_take_the_named_width_and_legible_ticks():
    fig, axes = sized_panels(2, 3, "page", height=4.0)
    assert axes.shape == (2, 3)
    assert tuple(fig.get_size_inches()) == pytest.approx((7.2, 4.0))
    axes[0][0].plot([1, 10], [1, 10])
    assert figures.smallest_font(fig) >= figures.MIN_FONT_PT
    plt.close(fig)
    fig, axd = mosaic([["a", "a"], ["b", "c"]], "column", height=3.0)
    assert sorted(axd) == ["a", "b", "c"]
    assert tuple(fig.get_size_inches()) == pytest.approx((3.5, 3.0))
    plt.close(fig)


def test_smallest_font_finds_the_smallest_text_and_legible_raises_only_those_below():
    fig, grid = sized_panels(1, 1, "column")
    ax = grid[0][0]
    ax.set_title("title", fontsize=11)
    small = ax.text(0.5, 0.5, "tiny", fontsize=4.5)
    ax.text(0.2, 0.2, "", fontsize=2)      # empty texts draw nothing and do not count
    hidden = ax.text(0.1, 0.1, "hidden", fontsize=3)
    hidden.set_visible(False)
    assert figures.smallest_font(fig) == 4.5
    legible(fig)
    assert small.get_fontsize() == figures.MIN_FONT_PT
    assert ax.title.get_fontsize() == 11
    assert figures.smallest_font(fig) == figures.MIN_FONT_PT
    assert all(t.get_fontsize() >= figures.MIN_FONT_PT for t in texts(fig))
    plt.close(fig)


def test_saved_page_figure_with_a_legend_below_stays_within_the_page_width(tmp_path):
    rng = np.random.default_rng(0)
    fig, grid = sized_panels(1, 3, "page")
    for k, ax in enumerate(grid[0]):
        ax.plot(rng.random(8), label=f"series {k}")
        ax.set_ylabel("a long axis label in points")
    titled(fig, "A title that is long enough to wrap at the width of one printed page " * 2)
    fig.tight_layout()
    legend_below(fig, grid[0], ncol=3)
    paths = figures.save(fig, tmp_path, "probe")
    assert sorted(p.suffix for p in paths) == [".pdf", ".png", ".svg"]
    with Image.open(tmp_path / "probe.png") as im:
        dpi = im.info["dpi"][0]
        width_in, height_in = im.size[0] / dpi, im.size[1] / dpi
    assert dpi == pytest.approx(200, abs=0.5)
    assert width_in <= 7.2 + 1e-6
    assert height_in > 3.2   # the legend below the axes is kept, not cropped away


def test_roofline_keeps_the_run_of_each_gpu_with_most_decode_rows_then_most_rows_then_newest():
    def run(gpu, decode, batched, date):
        return pd.DataFrame({"op": ["ceiling"] + ["gemv"] * (decode + batched), "gpu": gpu, "date": date,
                             "M": [0] + [1] * decode + [8] * batched})

    runs = [("a", run("H100", 3, 0, "2026-01-01")), ("b", run("H100", 1, 9, "2026-03-01")),
            ("c", run("H200", 2, 1, "2026-01-01")), ("d", run("H200", 2, 1, "2026-02-01")),
            ("e", run("H200", 2, 0, "2026-04-01"))]
    assert [src for src, _ in fullest_run_per_gpu(runs)] == ["a", "d"]
