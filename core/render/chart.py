"""A small price-history chart PNG (matplotlib): a collection's sales, one token's marked."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
from matplotlib.figure import Figure

from core.models import Sale

BACKGROUND = "#181a1f"
GRID = "#3a3d45"
TEXT = "#ebebeb"
SALE = "#6385a0"
MEDIAN = "#ffc400"
HIGHLIGHT = "#ff5a5f"
ESTIMATE = "#5ee07a"
# How many neighbouring sales the running median spans; wide enough to smooth single
# outliers, narrow enough to follow a real move.
MEDIAN_SPAN = 15


@dataclass(frozen=True)
class EstimateBand:
    """An estimate and its interval at a time, drawn as a bar on the chart."""

    at: datetime
    estimate: float
    low: float
    high: float


def render_price_chart(
    history: Sequence[Sale],
    highlight: Sequence[Sale] = (),
    *,
    title: str,
    currency: str,
    band: EstimateBand | None = None,
    size: tuple[float, float] = (6.4, 3.2),
    dpi: int = 100,
) -> bytes:
    """PNG bytes: every sale in ``history`` as a dot, their running median as a line, the
    ``highlight`` sales (one token's own) as larger marks, and the model's estimate with its
    80% interval as a bar at its time. Either sequence may be empty."""
    # A bare Figure with its own Agg canvas, not pyplot: no global state, so charts can be
    # drawn from worker threads at the same time.
    figure = Figure(figsize=size, dpi=dpi, facecolor=BACKGROUND)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.set_facecolor(BACKGROUND)
    for spine in axes.spines.values():
        spine.set_color(GRID)
    axes.tick_params(colors=TEXT, labelsize=8)
    axes.grid(True, color=GRID, linewidth=0.5)
    axes.set_title(title, color=TEXT, fontsize=10, loc="left")
    axes.set_ylabel(currency, color=TEXT, fontsize=8)

    ordered = sorted(history, key=lambda sale: sale.timestamp)
    if ordered:
        times = date2num([sale.timestamp for sale in ordered])
        prices = np.array([sale.price for sale in ordered], dtype=float)
        axes.scatter(times, prices, s=9, color=SALE, alpha=0.7, linewidths=0, label="sales")
        if len(prices) >= 3:
            axes.plot(
                times,
                running_median(prices, MEDIAN_SPAN),
                color=MEDIAN,
                linewidth=1.5,
                label="running median",
            )
    if highlight:
        marked = date2num([sale.timestamp for sale in highlight])
        axes.scatter(
            marked,
            [sale.price for sale in highlight],
            s=40,
            color=HIGHLIGHT,
            edgecolors=TEXT,
            linewidths=0.6,
            zorder=3,
            label="this token",
        )
    if band is not None:
        when = date2num([band.at])[0]
        axes.errorbar(
            [when],
            [band.estimate],
            yerr=[[band.estimate - band.low], [band.high - band.estimate]],
            fmt="D",
            color=ESTIMATE,
            ecolor=ESTIMATE,
            elinewidth=2.5,
            capsize=5,
            markersize=6,
            zorder=4,
            label="estimate, 80% interval",
        )
    if not ordered and not highlight and band is None:
        axes.text(
            0.5,
            0.5,
            "no recorded sales",
            color=TEXT,
            ha="center",
            va="center",
            transform=axes.transAxes,
        )
        axes.set_xticks([])
        axes.set_yticks([])
    else:
        axes.xaxis_date()
        locator = AutoDateLocator()
        axes.xaxis.set_major_locator(locator)
        axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))
        legend = axes.legend(fontsize=7, facecolor=BACKGROUND, edgecolor=GRID, loc="upper left")
        for text in legend.get_texts():
            text.set_color(TEXT)
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png", facecolor=BACKGROUND)
    return out.getvalue()


def running_median(values: np.ndarray, span: int) -> np.ndarray:
    """Median of each value with up to ``span // 2`` neighbours on either side."""
    half = max(0, span // 2)
    return np.array(
        [np.median(values[max(0, i - half) : i + half + 1]) for i in range(len(values))]
    )
