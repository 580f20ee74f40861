"""Every figure textgen draws, as PNG bytes that the caller writes: the run's loss.png, the report's loss
figure and the comparison of several runs. The only module that imports matplotlib, always with Agg."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

MAX_EPOCH_LINES = 25  # more epochs than this: a boundary line every k epochs, so the plot stays readable


def load_matplotlib():
    """Import matplotlib with the Agg backend (no display, no pyplot state); returns its Figure class.

    A command that will draw may call this early, before a signal can cut the import short.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator  # noqa: F401 - loaded with the rest, used by report_figure

    return Figure


def _figure(width: float, height: float, dpi: int):
    """A matplotlib Figure drawn with Agg."""
    return load_matplotlib()(figsize=(width, height), dpi=dpi)


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def epoch_step(longest: int, per_epoch: int) -> int:
    """Epochs between two boundary lines for a run of ``longest`` updates."""
    return max(1, math.ceil(longest / per_epoch / MAX_EPOCH_LINES))


def _epoch_lines(axis, longest: int, per_epoch: int | None) -> None:
    if not per_epoch:
        return
    step = epoch_step(longest, per_epoch)
    label = "epoch boundary" if step == 1 else f"every {step} epochs"
    for index, x in enumerate(range(per_epoch * step, longest + 1, per_epoch * step)):
        axis.axvline(x, color="grey", linestyle="--", linewidth=0.7, alpha=0.5, label=None if index else label)
    axis.grid(False, axis="x")  # the epoch lines are the vertical guides; a second set would only clutter


@dataclass
class LossCurve:
    """One run's smooth loss against updates."""

    label: str  # legend text
    updates: Sequence[int]  # x values
    smooth_loss: Sequence[float]  # y values
    updates_per_epoch: int | None = None  # where to draw epoch boundaries (None: none)


def loss_plot(curves: Sequence[LossCurve], title: str = "Smooth training loss") -> bytes:
    """The curves on one axis, epoch boundaries dashed, as PNG."""
    figure = _figure(8, 4.5, 100)
    axis = figure.add_subplot()
    longest = 0
    for curve in curves:
        axis.plot(curve.updates, curve.smooth_loss, label=curve.label, linewidth=1.2)
        longest = max(longest, max(curve.updates, default=0))
    boundaries = [c.updates_per_epoch for c in curves if c.updates_per_epoch]
    if boundaries and len(set(boundaries)) == 1:
        _epoch_lines(axis, longest, boundaries[0])
    axis.set_xlabel("update")
    axis.set_ylabel("smooth loss (nats per window)")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    if curves:
        axis.legend(loc="upper right")
    figure.tight_layout()
    return _png(figure)


@dataclass
class RunCurves:
    """What the report and the comparison draw of one run."""

    label: str  # legend text
    seq_length: int  # characters per window: smooth loss is per window, validation loss per character
    updates: list[int]  # x of the smooth loss
    smooth_loss: list[float]  # nats per window
    val_updates: list[int] = field(default_factory=list)  # x of the validation loss
    val_loss: list[float] = field(default_factory=list)  # nats per character
    updates_per_epoch: int | None = None  # for the epoch lines
    best: tuple[int, float] | None = None  # (update, loss in nats per window) of the best model, starred


def report_figure(run: RunCurves) -> bytes:
    """The report's loss figure as PNG: smooth loss, validation loss × seq_length, the best model, epochs."""
    from matplotlib.ticker import MaxNLocator

    n = run.seq_length
    figure = _figure(9, 4.8, 150)
    axis = figure.add_subplot()
    axis.plot(run.updates, run.smooth_loss, color="C0", linewidth=1.6, label=f"smooth training loss (per {n} chars)")
    if run.val_updates:
        axis.plot(run.val_updates, [loss * n for loss in run.val_loss], color="C1", linewidth=1.5, marker="o",
                  markersize=4, label=f"validation loss × {n}")
    if run.best is not None:
        axis.plot([run.best[0]], [run.best[1]], linestyle="none", marker="*", markersize=14, color="C3",
                  markeredgecolor="white", label=f"best model (update {run.best[0]:,})", zorder=5)
    longest = max(run.updates, default=0)
    per_epoch = run.updates_per_epoch
    axis.grid(alpha=0.3)
    _epoch_lines(axis, longest, per_epoch)
    axis.set_xlabel("update")
    axis.set_ylabel(f"nats per {n}-character window")
    if run.val_updates:
        right = axis.secondary_yaxis("right", functions=(lambda y: y / n, lambda y: y * n))
        right.set_ylabel("nats per character")
    if per_epoch:
        top = axis.secondary_xaxis("top", functions=(lambda u: u / per_epoch, lambda e: e * per_epoch))
        top.xaxis.set_major_locator(MaxNLocator(integer=True))
        top.set_xlabel("epoch")
    axis.set_xlim(0, max(longest, 1) * 1.02)  # a little room so a marker at the last update is not cut
    axis.legend(loc="best", framealpha=0.9)
    figure.tight_layout()
    return _png(figure)


def comparison_figure(runs: Sequence[RunCurves]) -> bytes:
    """Several runs' smooth loss (solid) and validation loss (dashed) on one axis, as PNG.

    Runs with one seq_length are drawn in nats per window (validation × seq_length); runs with
    different seq_lengths all in nats per character, so the curves stay comparable.
    """
    same_window = len({run.seq_length for run in runs}) == 1
    figure = _figure(9, 5, 150)
    axis = figure.add_subplot()
    longest = 0
    any_val = False
    for index, run in enumerate(runs):
        n = run.seq_length
        scale = 1.0 if same_window else 1.0 / n  # smooth loss is per window; per character when windows differ
        val_scale = n if same_window else 1.0  # val_loss is per character
        longest = max(longest, max(run.updates, default=0))
        colour = f"C{index % 10}"
        axis.plot(run.updates, [loss * scale for loss in run.smooth_loss], color=colour, linewidth=1.5,
                  label=run.label)
        if run.val_updates:
            any_val = True
            axis.plot(run.val_updates, [loss * val_scale for loss in run.val_loss], color=colour, linestyle="--",
                      linewidth=1.2, marker="o", markersize=2.5,
                      label=f"{run.label} (validation{f' × {n}' if same_window else ''})")
    axis.grid(alpha=0.3)
    per_epoch = {run.updates_per_epoch for run in runs}
    if len(per_epoch) == 1:
        _epoch_lines(axis, longest, per_epoch.pop())
    n = runs[0].seq_length
    axis.set_ylabel(f"nats per {n}-character window" if same_window else "nats per character")
    axis.set_xlabel("update")
    what = "Smooth training loss (solid)" + (" and validation loss (dashed)" if any_val else "")
    axis.set_title(what if same_window else what + ", per character")
    axis.legend(loc="best", fontsize="small", framealpha=0.9)
    figure.tight_layout()
    return _png(figure)


def sweep_figure(curves: Sequence[tuple[str, Sequence[int], Sequence[int], Sequence[float]]]) -> bytes:
    """A sweep's validation curves overlaid, against updates (left) and against characters read (right, so
    that batch sizes compare fairly): each curve is (label, updates, characters, val bits per character)."""
    figure = _figure(12.0, 4.6, 100)
    by_updates, by_characters = figure.subplots(1, 2, sharey=True)
    for index, (label, updates, characters, bpc) in enumerate(curves):
        style = ("-", "--", ":", "-.")[index // 10 % 4]  # the ten colours repeat: the line style tells them apart
        (line,) = by_updates.plot(updates, bpc, marker=".", linewidth=1.2, linestyle=style, label=label)
        by_characters.plot(characters, bpc, marker=".", linewidth=1.2, linestyle=style, color=line.get_color())
    by_updates.set_xlabel("updates")
    by_characters.set_xlabel("characters read")
    by_updates.set_ylabel("validation bits per character")
    for axis in (by_updates, by_characters):
        axis.grid(True, alpha=0.3)
    if curves:
        by_updates.legend(fontsize=7, loc="upper right")
    figure.tight_layout()
    return _png(figure)
