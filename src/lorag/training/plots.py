"""The loss-curve PNG written next to each adapter, so a run can be judged without opening the logs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lorag._imports import require


def plot_loss_curve(log_history: Sequence[dict[str, Any]], path: str | Path, *, title: str = "training loss") -> Path:
    """Draw train loss (and eval loss where logged) against the optimizer step and save it as a PNG.

    Uses matplotlib's object API with the Agg canvas, so it never touches pyplot's global backend or needs a
    display.
    """
    require("matplotlib", purpose="plotting the loss curve")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    train = [(row["step"], row["loss"]) for row in log_history if "loss" in row and "step" in row]
    evals = [(row["step"], row["eval_loss"]) for row in log_history if "eval_loss" in row and "step" in row]
    fig = Figure(figsize=(6.4, 4.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    if train:
        ax.plot(*zip(*train, strict=True), label="train loss", color="tab:blue", linewidth=1.2)
    if evals:
        ax.plot(*zip(*evals, strict=True), label="eval loss", color="tab:orange", marker="o", linewidth=1.2)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (completion tokens)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if train or evals:
        ax.legend()
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, format="png")
    return out
