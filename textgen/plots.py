"""Loss curves as PNG files; matplotlib is imported here only, with the Agg backend."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from textgen.checkpoint import atomic_write_bytes


@dataclass
class LossCurve:
    """One run's smooth loss against updates."""

    label: str  # legend text
    updates: Sequence[int]  # x values
    smooth_loss: Sequence[float]  # y values
    updates_per_epoch: int | None = None  # where to draw epoch boundaries (None: none)


def plot_loss(path: Path, curves: Sequence[LossCurve], title: str = "Smooth training loss") -> None:
    """Draw the curves on one axis, epoch boundaries dashed, and write the PNG atomically to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4.5), dpi=100)
    axis = figure.add_subplot()
    longest = 0
    for curve in curves:
        axis.plot(curve.updates, curve.smooth_loss, label=curve.label, linewidth=1.2)
        longest = max(longest, max(curve.updates, default=0))
    boundaries = [c.updates_per_epoch for c in curves if c.updates_per_epoch]
    if boundaries and len(set(boundaries)) == 1:
        per_epoch = boundaries[0]
        for index, x in enumerate(range(per_epoch, longest + 1, per_epoch), start=1):
            axis.axvline(x, color="grey", linestyle="--", linewidth=0.8, label="epoch boundary" if index == 1 else None)
    axis.set_xlabel("update")
    axis.set_ylabel("smooth loss (nats per window)")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    if curves:
        axis.legend(loc="upper right")
    figure.tight_layout()
    atomic_write_bytes(Path(path), lambda stream: figure.savefig(stream, format="png"))
