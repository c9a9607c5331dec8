"""PNG figures a person can read: maps over their inputs, with titles, axes and a legend.

Every figure has a title naming the model, the method and the class explained, one
panel per example headed "true: ... / predicted: ...", and a colour bar saying what
the colours mean. Images are drawn in grey with the map as a translucent overlay in a
perceptual colour map (`inferno`); sequences as a time-step x feature picture of the
input beside the same picture with the map over it; vectors as bars per feature;
attention as the input beside a bar per time step. Figures are made with
matplotlib's object API and the Agg canvas (no display, no global state) and written
atomically. matplotlib is imported only when a figure is drawn.
"""

from __future__ import annotations

import contextlib
import contextvars
import numbers
import os
from collections.abc import Sequence

import numpy as np

from keras_bigmodel import validation as v
from keras_bigmodel.saving import atomic_path

__all__ = [
    "METHOD_LABELS",
    "feature_names",
    "plain_text",
    "save_attention_plot",
    "save_feature_bars",
    "save_heatmap",
    "save_sequence_map",
]

# How each method is named in titles, and what its colours mean.
METHOD_LABELS = {
    "saliency": (
        "Saliency",
        "saliency |d logit / d input|, scaled to [0, 1] per example",
    ),
    "smoothgrad": (
        "SmoothGrad",
        "mean |d logit / d input| over noisy copies, scaled to [0, 1]",
    ),
    "integrated_gradients": (
        "Integrated gradients",
        "|attribution|: each value's share of logit(input) - logit(baseline), scaled to [0, 1]",
    ),
    "input_x_gradient": (
        "Input x gradient",
        "|input x d logit / d input|, scaled to [0, 1] per example",
    ),
    "gradient_shap": (
        "GradientSHAP",
        "|expected gradient x (input - baseline)|, scaled to [0, 1] per example",
    ),
    "deeplift": (
        "DeepLIFT (rescale)",
        "|attribution|: each value's share of logit(input) - logit(baseline), scaled to [0, 1]",
    ),
    "occlusion": (
        "Occlusion",
        "|drop of the logit| when a window over the value is blanked, scaled to [0, 1]",
    ),
    "gradcam": ("Grad-CAM", "Grad-CAM: evidence for the class, scaled to [0, 1]"),
    "gradcam++": ("Grad-CAM++", "Grad-CAM++: evidence for the class, scaled to [0, 1]"),
    "layercam": ("LayerCAM", "LayerCAM: evidence for the class, scaled to [0, 1]"),
    "scorecam": ("Score-CAM", "Score-CAM: evidence for the class, scaled to [0, 1]"),
    "attention": ("Attention", "attention weight (each example's weights sum to 1)"),
}
_DPI = 110
_TITLE_SIZE = 13
_PANEL_TITLE_SIZE = 10
_LABEL_SIZE = 9
_TICK_SIZE = 8


# ------------------------------------------------------------------------- panels
class _Panel:
    """What one input of one example shows; `draw` fills its axes."""

    kind = ""
    note = ""

    def __init__(self, heat, data=None, name: str | None = None):
        self.heat = heat
        self.data = data
        self.name = name

    def widths(self) -> list[float]:  # inches, one per axes
        raise NotImplementedError

    def draw(self, fig, specs, style) -> None:
        raise NotImplementedError


class _ImagePanel(_Panel):
    kind = "image"
    note = "dim grey: the input; blue line: its outline; colour: the map (opaque where high)"

    def widths(self):
        return [2.3]

    def draw(self, fig, specs, style):
        ax = fig.add_subplot(specs[0])
        if self.data is not None:
            _overlay(ax, _grey(self.data), self.heat, style)
        else:
            ax.imshow(self.heat, cmap=style["cmap"], norm=style["norm"], interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        if self.name:
            ax.set_xlabel(f"input '{self.name}'", fontsize=_LABEL_SIZE)


def _overlay(ax, grey, heat, style, aspect="equal") -> None:
    """The input in dim grey (so that bright means the map, not the input), the map over it
    with an opacity that grows with its value (the input shows through where the map is
    low), and the input's outline on top."""
    ax.imshow(0.5 * grey, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest", aspect=aspect)
    level = np.asarray(style["norm"](heat))
    alpha = np.clip(style["alpha"] * (0.3 + 0.7 * level), 0.0, 1.0)
    ax.imshow(
        heat,
        cmap=style["cmap"],
        norm=style["norm"],
        alpha=alpha,
        interpolation="nearest",
        aspect=aspect,
    )
    if style.get("outline", True) and grey.ndim == 2 and min(grey.shape) > 1 and np.ptp(grey) > 0:
        ax.contour(grey, levels=[0.5], colors=["#7fdfff"], linewidths=1.0, alpha=0.9)


def _step_ticks(ax, count: int, axis: str) -> None:
    step = max(1, int(np.ceil(count / 8)))
    ticks = list(range(0, count, step))
    if axis == "x":
        ax.set_xticks(ticks)
    else:
        ax.set_yticks(ticks)
    ax.tick_params(labelsize=_TICK_SIZE)


class _SequencePanel(_Panel):
    """(time, features): the input and the map over it, time steps down the page."""

    kind = "sequence"
    note = "left: the input (time steps down, features across); right: the map over it"

    def widths(self):
        per = float(np.clip(0.22 * self.heat.shape[1] + 0.9, 1.6, 3.2))
        return [per, per] if self.data is not None else [per]

    def draw(self, fig, specs, style):
        time, features = self.heat.shape
        axes = []
        if self.data is not None:
            ax = fig.add_subplot(specs[0])
            ax.imshow(
                _grey(self.data),
                cmap="gray",
                vmin=0.0,
                vmax=1.0,
                aspect="auto",
                interpolation="nearest",
            )
            ax.set_title("input", fontsize=_LABEL_SIZE)
            axes.append(ax)
        ax = fig.add_subplot(specs[-1], sharey=axes[0] if axes else None)
        if self.data is not None:
            _overlay(ax, _grey(self.data), self.heat, {**style, "outline": False}, aspect="auto")
            ax.set_title("map over the input", fontsize=_LABEL_SIZE)
        else:
            ax.imshow(
                self.heat,
                cmap=style["cmap"],
                norm=style["norm"],
                aspect="auto",
                interpolation="nearest",
            )
        axes.append(ax)
        for a in axes:
            _step_ticks(a, features, "x")
            _step_ticks(a, time, "y")
            a.set_xlabel(
                "feature" if not self.name else f"feature of '{self.name}'", fontsize=_LABEL_SIZE
            )
        axes[0].set_ylabel("time step", fontsize=_LABEL_SIZE)
        if len(axes) > 1:
            axes[1].tick_params(labelleft=False)


_FEATURE_NAMES: contextvars.ContextVar = contextvars.ContextVar("feature_names", default=None)


@contextlib.contextmanager
def feature_names(names: Sequence[str] | None):
    """Within the block, feature-bar figures label their bars with `names` (a tabular
    model's column names) when the count matches; None keeps "feature 0, 1, ...".

    Example:

    ```python
    with feature_names(["bill_length_mm", "island"]):
        kbm.explain.explain(model, x, "why.png")
    ```
    """
    if names is not None and (isinstance(names, str) or not all(isinstance(n, str) for n in names)):
        raise ValueError(f"`names` must be a list of strings or None. Received: {names!r}")
    token = _FEATURE_NAMES.set(None if names is None else [plain_text(n) for n in names])
    try:
        yield
    finally:
        _FEATURE_NAMES.reset(token)


def plain_text(text) -> str:
    """`text` as matplotlib draws it literally: `$` (math markup) escaped, control
    characters shown as escapes."""
    text = str(text)
    text = "".join(
        c if c.isprintable() or c == "\n" else c.encode("unicode_escape").decode("ascii")
        for c in text
    )
    return text.replace("$", r"\$")


class _VectorPanel(_Panel):
    """(features,): one bar per feature, the input's (scaled) values as grey marks;
    bars labelled by column name inside `feature_names(...)`."""

    kind = "tabular"

    @property
    def note(self) -> str:
        if self.data is None:  # e.g. a table's columns summed over their encoded values
            return "bars: the map per feature"
        return "bars: the map per feature; grey marks: the input's values, scaled to [0, 1]"

    def widths(self):
        names = self.names()
        if names is not None:  # room for each column's name under its bar
            return [float(np.clip(0.28 * len(self.heat) + 1.0, 2.6, 9.0))]
        return [float(np.clip(0.12 * len(self.heat) + 1.2, 2.4, 7.0))]

    def names(self):
        names = _FEATURE_NAMES.get()
        if names is None or len(names) != len(self.heat):
            return None
        return [n if len(n) <= 18 else n[:17] + "\u2026" for n in names]

    def draw(self, fig, specs, style):
        ax = fig.add_subplot(specs[0])
        x = np.arange(len(self.heat))
        colours = style["cmap"](style["norm"](self.heat))
        ax.bar(x, self.heat, color=colours, width=0.85, edgecolor="0.3", linewidth=0.5)
        if self.data is not None:
            ax.plot(
                x,
                _grey(self.data),
                linestyle="none",
                marker="_",
                markersize=7,
                color="0.45",
                label="input value (scaled)",
            )
        names = self.names()
        if self.data is not None and names is None:  # (with names, the note says it)
            ax.legend(fontsize=_TICK_SIZE, loc="upper right", frameon=False)
        ax.set_ylim(0.0, 1.15)
        if names is not None:
            ax.set_xticks(x, names, rotation=50, ha="right", rotation_mode="anchor")
            ax.tick_params(axis="x", labelsize=_TICK_SIZE)
            ax.set_xlabel("column", fontsize=_LABEL_SIZE)
            return ax.set_ylabel("importance", fontsize=_LABEL_SIZE)
        _step_ticks(ax, len(self.heat), "x")
        ax.set_xlabel(
            "feature" if not self.name else f"feature of '{self.name}'",
            fontsize=_LABEL_SIZE,
        )
        ax.set_ylabel("importance", fontsize=_LABEL_SIZE)


class _AttentionPanel(_Panel):
    """(time,) weights: the input beside one bar per time step."""

    kind = "attention"
    note = "left: the input (time steps down); right: the attention weight of each step"

    def widths(self):
        if self.data is None:
            return [2.2]
        features = self.data.shape[1]
        return [float(np.clip(0.22 * features + 0.9, 1.6, 3.2)), 1.6]

    def draw(self, fig, specs, style):
        time = len(self.heat)
        first = None
        if self.data is not None:
            first = fig.add_subplot(specs[0])
            first.imshow(
                _grey(self.data),
                cmap="gray",
                vmin=0.0,
                vmax=1.0,
                aspect="auto",
                interpolation="nearest",
            )
            _step_ticks(first, self.data.shape[1], "x")
            _step_ticks(first, time, "y")
            first.set_xlabel("feature", fontsize=_LABEL_SIZE)
            first.set_ylabel("time step", fontsize=_LABEL_SIZE)
            first.set_title("input", fontsize=_LABEL_SIZE)
        ax = fig.add_subplot(specs[-1], sharey=first)
        ax.barh(
            np.arange(time),
            self.heat,
            color=style["cmap"](style["norm"](self.heat)),
            height=0.8,
            edgecolor="0.3",
            linewidth=0.5,
        )
        ax.set_xlim(0.0, style["norm"].vmax * 1.05)
        ax.set_xlabel("attention weight", fontsize=_LABEL_SIZE)
        ax.tick_params(labelsize=_TICK_SIZE)
        if first is None:
            _step_ticks(ax, time, "y")
            ax.set_ylim(time - 0.5, -0.5)
            ax.set_ylabel("time step", fontsize=_LABEL_SIZE)
        else:
            ax.tick_params(labelleft=False)


_PANELS = {
    "image": _ImagePanel,
    "sequence": _SequencePanel,
    "tabular": _VectorPanel,
    "attention": _AttentionPanel,
}


# ------------------------------------------------------------------------ helpers
def _grey(values) -> np.ndarray:
    """An input scaled to [0, 1] for display; colour images become their luminance."""
    values = np.asarray(values, dtype="float32")
    if values.ndim == 3:
        values = values.mean(axis=-1)
    low, high = float(values.min()), float(values.max())
    return (values - low) / (high - low) if high > low else np.zeros_like(values)


def _name(index, class_names) -> str:
    if index is None:
        return "?"
    if class_names is not None and 0 <= int(index) < len(class_names):
        return plain_text(class_names[int(index)])
    return str(int(index))


def _check_classes(arg: str, values, count: int, class_names=None):
    if values is None:
        return None
    if isinstance(values, numbers.Integral) and not isinstance(values, bool):
        values = [values] * count
    values = np.asarray(values).reshape(-1) if not isinstance(values, (list, tuple)) else values
    values = list(values)
    if len(values) != count or any(
        isinstance(x, bool) or not isinstance(x, (numbers.Integral, np.integer)) or x < 0
        for x in values
    ):
        raise ValueError(
            f"`{arg}` must be {count} non-negative class indices (one per example). "
            f"Received: {arg}={values!r}"
        )
    return [int(x) for x in values]


def _check_class_names(class_names):
    if class_names is None:
        return None
    if (
        isinstance(class_names, str)
        or not isinstance(class_names, (list, tuple))
        or not all(isinstance(c, (str, numbers.Integral)) for c in class_names)
    ):
        raise ValueError(
            f"`class_names` must be a list of strings (one per class). "
            f"Received: class_names={class_names!r}"
        )
    return [str(c) for c in class_names]


def _cell_title(i, titles, labels, predicted, explained, class_names):
    lines = []
    colour = "black"
    if titles is not None:
        lines.append(plain_text(titles[i]))
    parts = []
    if labels is not None:
        parts.append(f"true: {_name(labels[i], class_names)}")
    if predicted is not None:
        parts.append(f"predicted: {_name(predicted[i], class_names)}")
        if labels is not None and labels[i] != predicted[i]:
            colour = "firebrick"
            parts[-1] += " (wrong)"
    if parts:
        lines.append(" / ".join(parts))
    if explained is not None and (predicted is None or explained[i] != predicted[i]):
        lines.append(f"explains: {_name(explained[i], class_names)}")
    return "\n".join(lines), colour


def figure_title(
    method: str | None = None,
    model_name: str | None = None,
    explained=None,
    predicted=None,
    class_names=None,
) -> str:
    """'<Method> of model '<name>': class <c>' (or 'each example's predicted class')."""
    label = METHOD_LABELS.get(method, (method or "Explanation", ""))[0]
    head = f"{label} of model '{plain_text(model_name)}'" if model_name else label
    if explained is None:
        return head
    if len(set(explained)) == 1:
        return f"{head}: explaining class {_name(explained[0], class_names)}"
    if predicted is not None and list(explained) == list(predicted):
        return f"{head}: explaining each example's predicted class"
    return f"{head}: explaining the class under each panel"


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _write_png(fig, path) -> str:
    path = v.check_path("path", path)
    if not path.lower().endswith(".png"):
        raise ValueError(f"`path` must end in '.png'. Received: path={path!r}")
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=_DPI)
    return path


def render(
    cells: list[list[_Panel]],
    *,
    title: str,
    colorbar_label: str,
    cmap: str = "inferno",
    vmax: float = 1.0,
    alpha: float = 0.85,
    ncols: int | None = None,
    titles=None,
    labels=None,
    predicted=None,
    explained=None,
    class_names=None,
):
    """A Figure with one cell per example (its panels side by side, headed by its
    true / predicted class), the title above, a line saying how to read the panels
    below, and the colour bar at the right. `ncols=None` puts 4 one-panel cells or 2
    wider ones in a row. Exposed for tests and for callers who want the Figure."""
    import matplotlib
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    style = {
        "cmap": matplotlib.colormaps[cmap],
        "norm": Normalize(0.0, vmax),
        "alpha": alpha,
    }
    if ncols is None:
        ncols = 4 if max(sum(len(p.widths()) for p in cell) for cell in cells) == 1 else 2
    cols = max(1, min(ncols, len(cells)))
    rows = -(-len(cells) // cols)
    cell_width = max(sum(sum(p.widths()) for p in cell) for cell in cells)
    bar_width = 1.5  # room for the colour bar, its ticks and a label of up to 4 lines
    # Each example's header must fit its cell (about 0.6 em per character), so that
    # neighbouring headers never overlap nor run off the figure's edges: cells widen
    # for it up to 3.6 inches, and longer headers wrap.
    em = _PANEL_TITLE_SIZE * 0.6 / 72
    raw = [
        _cell_title(i, titles, labels, predicted, explained, class_names) for i in range(len(cells))
    ]
    longest = max((len(line) for text, _ in raw for line in text.splitlines()), default=0)
    cell_width = max(cell_width, min(longest * em + 0.2, 3.6))
    width = max(cols * cell_width + bar_width, 6.0)
    per_line = max(8, int(((width - bar_width) / cols - 0.2) / em))
    headers = [
        ("\n".join(_wrap(line, per_line) for line in text.splitlines()), colour)
        for text, colour in raw
    ]
    header_lines = max(len(text.splitlines()) for text, _ in headers)
    cell_height = 2.3 + 0.2 * header_lines
    # the title wraps to the figure's width (about 0.6 em per character)
    title = _wrap(title, int(width * 72 / (_TITLE_SIZE * 0.62)))
    lines = title.count("\n")
    fig = _figure(width, rows * cell_height + 0.85 + 0.25 * lines)
    left, right = fig.subfigures(1, 2, width_ratios=[cols * cell_width, bar_width], wspace=0.0)
    grid = left.subfigures(rows, cols, squeeze=False)
    for i, cell in enumerate(cells):
        sub = grid[i // cols][i % cols]
        ratios = [w for p in cell for w in p.widths()]
        specs = sub.add_gridspec(1, len(ratios), width_ratios=ratios)
        start = 0
        for one in cell:
            n = len(one.widths())
            one.draw(sub, [specs[0, j] for j in range(start, start + n)], style)
            start += n
        text, colour = headers[i]
        if text:
            sub.suptitle(text, fontsize=_PANEL_TITLE_SIZE, color=colour)
    fig.suptitle(title, fontsize=_TITLE_SIZE, fontweight="bold")
    notes = list(dict.fromkeys(p.note for cell in cells for p in cell if p.note))
    if notes:
        fig.supxlabel("; ".join(notes), fontsize=_LABEL_SIZE, color="0.25")
    bar_grid = right.add_gridspec(3, 1, height_ratios=[0.12, 0.76, 0.12])
    cax = right.add_subplot(bar_grid[1, 0])
    bar = fig.colorbar(ScalarMappable(norm=style["norm"], cmap=style["cmap"]), cax=cax)
    bar.set_label(_wrap(colorbar_label, 34 if rows > 1 else 26), fontsize=_LABEL_SIZE)
    bar.ax.tick_params(labelsize=_TICK_SIZE)
    return fig


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) or text


# ----------------------------------------------------------------- public writers
def _check_common(count, titles, labels, predicted, explained, class_names, ncols, alpha=None):
    if titles is not None and (isinstance(titles, str) or len(titles) != count):
        raise ValueError(
            f"`titles` must have one title per example ({count}). Received: titles={titles!r}"
        )
    class_names = _check_class_names(class_names)
    labels = _check_classes("labels", labels, count)
    predicted = _check_classes("predicted", predicted, count)
    explained = _check_classes("explained", explained, count)
    v.check_positive_int("ncols", ncols, allow_none=True)
    if alpha is not None:
        v.check_number("alpha", alpha, minimum=0.0, maximum=1.0)
    return labels, predicted, explained, class_names


def _check_cmap(cmap):
    import matplotlib

    if not isinstance(cmap, str) or cmap not in matplotlib.colormaps:
        raise ValueError(
            f"`cmap` must name a matplotlib colour map, e.g. 'inferno' or 'magma'. "
            f"Received: cmap={cmap!r}"
        )
    return cmap


def save_heatmap(
    heatmaps,
    path: str | os.PathLike,
    images=None,
    titles: Sequence[str] | None = None,
    cmap: str = "inferno",
    alpha: float = 0.85,
    ncols: int | None = None,
    *,
    title: str | None = None,
    method: str | None = None,
    model_name: str | None = None,
    labels=None,
    predicted=None,
    explained=None,
    class_names: Sequence[str] | None = None,
    colorbar_label: str | None = None,
) -> str:
    """Writes image maps (saliency, Grad-CAM, ...) over their images as one PNG.

    Args:
        heatmaps: `(H, W)` or `(batch, H, W)` values in [0, 1].
        path: Destination `.png` (written atomically).
        images: The images explained, `(batch, H, W[, C])`, drawn in grey beneath the
            maps (recommended; without them only the maps are drawn).
        titles: Optional extra line per panel.
        cmap: A matplotlib colour map; perceptual ones (`inferno`, `magma`) read best.
        alpha: Opacity of the map over the image.
        ncols: Panels per row (default: 4, or 2 for two-part panels).
        title: The figure's title; by default built from `method`, `model_name` and
            the class(es) explained.
        method: The method's key (`"saliency"`, `"gradcam"`, ...; see `METHOD_LABELS`),
            which names it in the title and the colour bar.
        model_name: The model's name for the title.
        labels: True class per example ("true: ..." on each panel).
        predicted: Predicted class per example ("predicted: ...").
        explained: The class each map explains (said when it is not the prediction).
        class_names: Names of the classes, indexed by class.
        colorbar_label: What the colours mean; by default from `method`.

    Returns:
        The path written.

    Raises:
        ValueError: maps that are not finite `(batch, H, W)`, images of another size,
            per-example lists of the wrong length, or a path that is not a `.png`.
        TypeError: `path` is not a path.

    Example:

    ```python
    kbm.explain.save_heatmap(cam, "cam.png", images=images, method="gradcam",
                             model_name="cnn", labels=y, predicted=p, explained=p)
    ```
    """
    maps = np.asarray(heatmaps, dtype="float32")
    if maps.ndim == 2:
        maps = maps[None]
    if maps.ndim != 3 or maps.size == 0 or not np.all(np.isfinite(maps)):
        raise ValueError(
            f"`heatmaps` must be finite, of shape (H, W) or (batch, H, W). Received: "
            f"shape {maps.shape}"
        )
    if images is not None:
        images = np.asarray(images, dtype="float32")
        if images.ndim == 2 or (
            images.ndim == 3
            and images.shape[-1] in (1, 3)
            and len(maps) == 1
            and images.shape[:2] == maps.shape[1:]
        ):
            images = images[None]
        if (
            images.ndim not in (3, 4)
            or len(images) != len(maps)
            or images.shape[1:3] != maps.shape[1:3]
        ):
            raise ValueError(
                f"`images` must match the heatmaps' batch and size {maps.shape}. Received: "
                f"shape {images.shape}"
            )
    return _save_maps(
        _ImagePanel,
        maps,
        images,
        path,
        cmap=cmap,
        alpha=alpha,
        ncols=ncols,
        titles=titles,
        title=title,
        method=method,
        model_name=model_name,
        labels=labels,
        predicted=predicted,
        explained=explained,
        class_names=class_names,
        colorbar_label=colorbar_label,
    )


def _save_maps(
    panel_class,
    maps,
    data,
    path,
    *,
    cmap,
    alpha,
    ncols,
    titles,
    title,
    method,
    model_name,
    labels,
    predicted,
    explained,
    class_names,
    colorbar_label,
) -> str:
    """What the per-method figures share: one `panel_class` panel per example (its map
    and, when given, its input), titled by method and classes, written to `path`.
    `alpha=None` keeps `render`'s default (panels that draw no overlay)."""
    cmap = _check_cmap(cmap)
    labels, predicted, explained, class_names = _check_common(
        len(maps), titles, labels, predicted, explained, class_names, ncols, alpha
    )
    cells = [[panel_class(m, None if data is None else data[i])] for i, m in enumerate(maps)]
    fig = render(
        cells,
        title=title or figure_title(method, model_name, explained, predicted, class_names),
        colorbar_label=colorbar_label or _colorbar_label(method),
        cmap=cmap,
        ncols=ncols,
        titles=titles,
        labels=labels,
        predicted=predicted,
        explained=explained,
        class_names=class_names,
        **({} if alpha is None else {"alpha": alpha}),
    )
    return _write_png(fig, path)


def _colorbar_label(method) -> str:
    return METHOD_LABELS.get(method, ("", "importance, scaled to [0, 1] per example"))[1]


def save_sequence_map(
    maps,
    path: str | os.PathLike,
    sequences=None,
    titles: Sequence[str] | None = None,
    cmap: str = "inferno",
    alpha: float = 0.85,
    ncols: int | None = None,
    *,
    title: str | None = None,
    method: str | None = None,
    model_name: str | None = None,
    labels=None,
    predicted=None,
    explained=None,
    class_names: Sequence[str] | None = None,
    colorbar_label: str | None = None,
) -> str:
    """Writes sequence maps as time-step x feature pictures beside their inputs.

    Args:
        maps: `(batch, time, features)` values in [0, 1] (e.g. `saliency` of a
            sequence model); `(batch, time)` is drawn as one feature column.
        path: Destination `.png` (written atomically).
        sequences: The inputs explained, `(batch, time, features)`: drawn in grey, and
            again beneath the translucent map.
        **options: `titles`, `cmap`, `alpha`, `ncols`, `title`, `method`, `model_name`,
            `labels`, `predicted`, `explained`, `class_names`, `colorbar_label`: as for
            `save_heatmap`.

    Returns:
        The path written.

    Raises:
        ValueError: maps that are not finite `(batch, time[, features])`, sequences of
            another shape, per-example lists of the wrong length, or a non-`.png` path.

    Example:

    ```python
    maps = kbm.explain.saliency(rnn, sequences, classes)          # (batch, time, features)
    kbm.explain.save_sequence_map(maps, "rnn.png", sequences, method="saliency")
    ```
    """
    maps = np.asarray(maps, dtype="float32")
    if maps.ndim == 2:
        maps = maps[..., None]
    if maps.ndim != 3 or maps.size == 0 or not np.all(np.isfinite(maps)):
        raise ValueError(
            f"`maps` must be finite, of shape (batch, time, features). Received: shape {maps.shape}"
        )
    if sequences is not None:
        sequences = np.asarray(sequences, dtype="float32")
        if sequences.ndim == 2:
            sequences = sequences[..., None]
        if sequences.shape != maps.shape:
            raise ValueError(
                f"`sequences` must have the maps' shape {maps.shape}. Received: shape "
                f"{sequences.shape}"
            )
    return _save_maps(
        _SequencePanel,
        maps,
        sequences,
        path,
        cmap=cmap,
        alpha=alpha,
        ncols=ncols,
        titles=titles,
        title=title,
        method=method,
        model_name=model_name,
        labels=labels,
        predicted=predicted,
        explained=explained,
        class_names=class_names,
        colorbar_label=colorbar_label,
    )


def save_feature_bars(
    maps,
    path: str | os.PathLike,
    features=None,
    titles: Sequence[str] | None = None,
    cmap: str = "inferno",
    ncols: int | None = None,
    *,
    title: str | None = None,
    method: str | None = None,
    model_name: str | None = None,
    labels=None,
    predicted=None,
    explained=None,
    class_names: Sequence[str] | None = None,
    colorbar_label: str | None = None,
) -> str:
    """Writes per-feature importances of vector (tabular) inputs as bar charts.

    Args:
        maps: `(batch, features)` values in [0, 1].
        path: Destination `.png` (written atomically).
        features: The inputs explained, `(batch, features)`, marked in grey (scaled).
        **options: `titles`, `cmap`, `ncols`, `title`, `method`, `model_name`, `labels`,
            `predicted`, `explained`, `class_names`, `colorbar_label`: as for
            `save_heatmap`.

    Returns:
        The path written.

    Example:

    ```python
    kbm.explain.save_feature_bars(kbm.explain.saliency(mlp, x, 1), "mlp.png", x)
    ```
    """
    maps = np.asarray(maps, dtype="float32")
    if maps.ndim == 1:
        maps = maps[None]
    if maps.ndim != 2 or maps.size == 0 or not np.all(np.isfinite(maps)):
        raise ValueError(
            f"`maps` must be finite, of shape (batch, features). Received: shape {maps.shape}"
        )
    if features is not None:
        features = np.asarray(features, dtype="float32").reshape(maps.shape[0], -1)
        if features.shape != maps.shape:
            raise ValueError(
                f"`features` must have the maps' shape {maps.shape}. Received: shape "
                f"{features.shape}"
            )
    return _save_maps(
        _VectorPanel,
        maps,
        features,
        path,
        cmap=cmap,
        alpha=None,
        ncols=ncols,
        titles=titles,
        title=title,
        method=method,
        model_name=model_name,
        labels=labels,
        predicted=predicted,
        explained=explained,
        class_names=class_names,
        colorbar_label=colorbar_label,
    )


def save_attention_plot(
    scores,
    path: str | os.PathLike,
    sequences=None,
    titles: Sequence[str] | None = None,
    ncols: int | None = None,
    *,
    title: str | None = None,
    model_name: str | None = None,
    labels=None,
    predicted=None,
    class_names: Sequence[str] | None = None,
    cmap: str = "inferno",
) -> str:
    """Writes attention weights per time step as a PNG, beside the inputs.

    Args:
        scores: `(batch, time)` attention weights (e.g. from `attention_scores`).
        path: Destination `.png` (written atomically).
        sequences: The inputs `(batch, time, features)`, drawn as a time-step x feature
            picture beside one bar per step (for the digits the steps are the image
            rows, so the picture is the digit).
        titles: Optional extra line per example.
        ncols: Examples per row (default: 2).
        title: The figure's title; by default "Attention of model '<name>'".
        model_name: The model's name for the title.
        labels, predicted, class_names: As for `save_heatmap`.
        cmap: Colour map of the bars.

    Returns:
        The path written.

    Raises:
        ValueError: scores that are not finite `(batch, time)`, sequences of another
            batch or length, per-example lists of the wrong length, or a non-`.png` path.

    Example:

    ```python
    weights = kbm.explain.attention_scores(model, sequences)
    kbm.explain.save_attention_plot(weights, "attention.png", sequences, model_name="rnn")
    ```
    """
    scores = np.asarray(scores, dtype="float32")
    if scores.ndim != 2 or scores.size == 0 or not np.all(np.isfinite(scores)):
        raise ValueError(
            f"`scores` must be finite, of shape (batch, time). Received: shape {scores.shape}"
        )
    if sequences is not None:
        sequences = np.asarray(sequences, dtype="float32")
        if sequences.ndim == 2:
            sequences = sequences[..., None]
        if sequences.ndim != 3 or sequences.shape[:2] != scores.shape:
            raise ValueError(
                f"`sequences` must have shape (batch, time, features) matching scores "
                f"{scores.shape}. Received: shape {sequences.shape}"
            )
    cmap = _check_cmap(cmap)
    labels, predicted, _, class_names = _check_common(
        len(scores), titles, labels, predicted, None, class_names, ncols
    )
    cells = [
        [_AttentionPanel(s, None if sequences is None else sequences[i])]
        for i, s in enumerate(scores)
    ]
    vmax = float(np.ceil(max(float(scores.max()), 1e-3) * 10) / 10)
    head = f"Attention of model '{model_name}'" if model_name else "Attention"
    if predicted is not None and len(set(predicted)) == 1:
        what = f"when it predicts class {_name(predicted[0], class_names)}"
    else:
        what = "in each example's prediction"
    fig = render(
        cells,
        title=title or f"{head}: weight of each time step {what}",
        colorbar_label=_colorbar_label("attention"),
        cmap=cmap,
        vmax=vmax,
        ncols=ncols,
        titles=titles,
        labels=labels,
        predicted=predicted,
        class_names=class_names,
    )
    return _write_png(fig, path)


def panel(kind: str, heat, data=None, name: str | None = None) -> _Panel:
    """One panel of `render` (kinds: image, sequence, tabular, attention)."""
    return _PANELS[v.check_choice("kind", kind, _PANELS)](heat, data, name)
