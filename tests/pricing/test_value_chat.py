"""/value with a trained model, through the console and the real Telegram client: the
estimate and its range, the reason, the chart with the estimate and the comps strip."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from bot.access import Admins
from bot.commands import LensCommands
from bot.console import Console
from bot.telegram_bot import running_telegram
from core.config import AdminSettings, TelegramSettings
from tests.bot.fake_telegram import TOKEN, FakeBotApi, update
from tests.pricing.conftest import Market
from tests.pricing.synthetic import SLUG


async def test_value_answers_with_the_model(market: Market) -> None:
    answer = await LensCommands(market.engine).value(f"{SLUG} 7")

    assert answer.estimate is not None
    assert answer.estimate.model == market.engine.storage.price_models.latest(SLUG).version  # type: ignore[union-attr]
    assert [p.filename for p in answer.pictures] == ["value.png", "comps.png"]
    with Image.open(io.BytesIO(answer.pictures[1].data)) as strip:
        assert strip.width > strip.height  # one row of comps


async def test_console_writes_the_chart_and_the_comps(market: Market, tmp_path: Path) -> None:
    out = io.StringIO()
    console = Console(LensCommands(market.engine), tmp_path, out)

    await console.handle(f"/value {SLUG} 7")

    text = out.getvalue()
    assert "Estimate:" in text and "80% range:" in text and "Looks like:" in text
    assert "The collection level is" in text
    assert sorted(p.name.split("-")[0] for p in tmp_path.iterdir()) == ["comps", "value"]


async def test_telegram_sends_the_estimate_chart_and_comps(
    market: Market, api: FakeBotApi
) -> None:
    settings = TelegramSettings(api_root=api.root, poll_timeout_s=1)
    lens = LensCommands(market.engine)
    async with running_telegram(TOKEN, settings, lens, Admins(AdminSettings())):
        await api.push(update(700, text=f"/value {SLUG} 7"))
        await api.wait_for(lambda calls: len(api.sent(700)) >= 2, timeout=60)

    chart, comps = [c for c in api.sent(700) if c.method == "sendPhoto"][:2]
    assert "Estimate:" in chart.text and "80% range:" in chart.text
    assert chart.params["parse_mode"] == "HTML"
    assert comps.files["photo"].startswith(b"\x89PNG")
