"""Explanation figures that speak the user's data: feature bars labelled by column name,
titles that neither overlap nor leave the figure (measured on the drawn text's extents),
and class names with matplotlib math markup or control characters drawn literally."""

import numpy as np
import pytest

from keras_bigmodel.explain import figures

COLUMNS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "island"]


def _texts(fig):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    found = []
    for sub in [fig, *fig.subfigs, *[s for f in fig.subfigs for s in f.subfigs]]:
        if sub._suptitle is not None and sub._suptitle.get_text():
            found.append((sub._suptitle.get_text(), sub._suptitle.get_window_extent(renderer)))
    return found, fig.bbox


@pytest.mark.backend_independent
def test_feature_bars_are_labelled_by_column_and_titles_fit(tmp_path):
    rng = np.random.default_rng(0)
    maps, rows = rng.uniform(size=(8, 5)), rng.normal(size=(8, 5))
    names = ["Adelie $x^2$", "Chinstrap\x00", "Gentoo_{a}"]
    cells = [[figures.panel("tabular", m, r)] for m, r in zip(maps, rows)][:4]  # one row
    with figures.feature_names(COLUMNS):
        fig = figures.render(
            cells,
            title="Integrated gradients of model 'a model with a rather long name, to wrap'",
            colorbar_label="importance",
            labels=[0, 1, 2, 0],
            predicted=[0, 1, 1, 0],
            class_names=names,
        )
    ticks = [t.get_text() for t in fig.subfigs[0].subfigs[0].axes[0].get_xticklabels()]
    assert ticks == COLUMNS
    texts, bounds = _texts(fig)
    assert len(texts) == 5  # the figure's title and one per example
    for text, box in texts:  # inside the figure
        assert box.x0 >= bounds.x0 - 1 and box.x1 <= bounds.x1 + 1, text
        assert box.y0 >= bounds.y0 - 1 and box.y1 <= bounds.y1 + 1, text
    for i, (a, box_a) in enumerate(texts):  # no two titles overlap
        for b, box_b in texts[i + 1 :]:
            assert not box_a.overlaps(box_b), (a, b)
    bar = fig.subfigs[1].axes[0].get_window_extent()
    assert bar.width > 10 and bar.height > 100  # the colour bar keeps its room
    shown = " ".join(t for t, _ in texts)
    assert r"Adelie \$x^2\$" in shown and "Chinstrap\\x00" in shown  # drawn literally
    # and it writes (a class name with math markup used to make every figure fail)
    with figures.feature_names(COLUMNS):
        path = figures.save_feature_bars(
            maps, tmp_path / "bars.png", rows, labels=[0] * 8, class_names=names
        )
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match=r"`names` must be a list of strings or None"):
        with figures.feature_names("island"):
            pass
