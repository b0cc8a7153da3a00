"""The price-history chart: a PNG for any amount of history, and its running median."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from PIL import Image

from core.models import Sale
from core.render.chart import render_price_chart, running_median


def sales(n: int) -> list[Sale]:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    return [
        Sale("a", str(i), start + timedelta(days=i), 1.0 + (i % 5) / 10, "ETH", f"0x{i}")
        for i in range(n)
    ]


@pytest.mark.parametrize(("history", "marked"), [(0, 0), (0, 1), (1, 0), (2, 1), (200, 3)])
def test_chart_is_a_png_whatever_the_history(history: int, marked: int) -> None:
    data = sales(history)

    png = render_price_chart(data, sales(marked), title="apes #1", currency="ETH")

    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == (640, 320)


def test_running_median_smooths_a_spike() -> None:
    values = np.array([1.0, 1.0, 50.0, 1.0, 1.0])

    assert running_median(values, 3).tolist() == [1.0, 1.0, 1.0, 1.0, 1.0]
    assert running_median(values, 1).tolist() == values.tolist()
