"""The bot's settings: shipped defaults, env overrides for the API roots, secrets from env."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import Secrets, load_settings
from core.errors import ConfigError
from tests.datasets import ROOT, write_config


def test_shipped_config_has_the_bot_and_valuation_sections() -> None:
    settings = load_settings(ROOT / "config.yaml", env={})

    assert settings.bot.telegram.api_root == "https://api.telegram.org"
    assert settings.bot.telegram.mode == "polling"
    assert settings.bot.discord.api_root is None
    assert settings.bot.discord.command_sync == "global"
    assert settings.bot.user_rate_limit.requests == 6
    assert settings.valuation.window_days == 30


def test_env_points_the_bots_at_other_servers(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.yaml", {"bot": {"discord": {"guild_ids": [1]}}})

    settings = load_settings(
        config,
        env={
            "NFTLENS_TELEGRAM_API": "http://127.0.0.1:8081/",
            "NFTLENS_DISCORD_API": "http://127.0.0.1:8080",
        },
    )

    assert settings.bot.telegram.api_root == "http://127.0.0.1:8081"
    assert settings.bot.discord.api_root == "http://127.0.0.1:8080"
    assert settings.bot.discord.guild_ids == (1,)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"bot": {"telegram": {"mode": "webhook"}}}, "webhook mode needs webhook_url"),
        ({"bot": {"telegram": {"api_root": "api.telegram.org"}}}, "bot.telegram.api_root"),
        ({"bot": {"discord": {"command_sync": "sometimes"}}}, "bot.discord.command_sync"),
        ({"bot": {"user_rate_limit": {"requests": 0, "per_s": 1}}}, "requests"),
        ({"bot": {"admins": {"telegram_users": [1]}}}, "'bot.admins.telegram_users' is not"),
    ],
)
def test_bad_bot_settings_are_named(tmp_path: Path, overrides: dict, named: str) -> None:
    config = write_config(tmp_path / "c.yaml", overrides)

    with pytest.raises(ConfigError, match=named):
        load_settings(config, env={})


def test_tokens_come_from_the_environment_and_never_print() -> None:
    secrets = Secrets.from_env(
        {"TELEGRAM_BOT_TOKEN": " 123:abc-telegram ", "DISCORD_BOT_TOKEN": "discord-secret"}
    )

    assert secrets.telegram_bot_token is not None and secrets.discord_bot_token is not None
    assert secrets.telegram_bot_token.get_secret_value() == "123:abc-telegram"
    assert "abc-telegram" not in repr(secrets) and "discord-secret" not in str(secrets)
    assert Secrets.from_env({}).telegram_bot_token is None
