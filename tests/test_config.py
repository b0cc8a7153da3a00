"""Settings: the shipped config.yaml, validation with clear messages, env overrides, frozen."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from core.config import Secrets, load_settings
from core.errors import ConfigError
from tests.datasets import ROOT, write_config


def test_shipped_config_loads() -> None:
    settings = load_settings(ROOT / "config.yaml", env={})

    assert settings.embedding.input_size == 96
    assert settings.embedding.pooling == "gem"
    assert settings.images.background_rgb == (128, 128, 128)
    assert settings.index.approximate_above == 50_000
    assert settings.search.default_k == 5
    # A relative data_dir is taken relative to the config file, not the working directory.
    assert settings.data_dir == ROOT / "data"


def test_relative_data_dir_follows_the_config_file(tmp_path: Path) -> None:
    config = write_config(tmp_path / "conf" / "lens.yaml", {"data_dir": "store"})

    assert load_settings(config, env={}).data_dir == tmp_path / "conf" / "store"


def test_missing_sections_take_defaults(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.yaml", {"embedding": {"batch_size": 3}})

    settings = load_settings(config, env={})

    assert settings.embedding.batch_size == 3
    assert settings.embedding.input_size == 96
    assert settings.fetch.ipfs_gateway == "https://ipfs.io"


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"embeding": {"input_size": 32}}, "'embeding' is not a known setting"),
        ({"embedding": {"input_sise": 32}}, "'embedding.input_sise' is not a known setting"),
    ],
)
def test_unknown_key_is_rejected_by_name(
    tmp_path: Path, overrides: dict[str, object], named: str
) -> None:
    config = write_config(tmp_path / "c.yaml", overrides)

    with pytest.raises(ConfigError) as caught:
        load_settings(config, env={})

    assert named in str(caught.value)
    assert str(config) in str(caught.value)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"embedding": {"input_size": 5}}, "embedding.input_size"),
        ({"embedding": {"pooling": "median"}}, "embedding.pooling"),
        ({"images": {"background": "red"}}, "images.background"),
        ({"index": {"hnsw_m": 1}}, "index.hnsw_m"),
    ],
)
def test_bad_value_is_rejected_by_name(
    tmp_path: Path, overrides: dict[str, object], named: str
) -> None:
    config = write_config(tmp_path / "c.yaml", overrides)

    with pytest.raises(ConfigError) as caught:
        load_settings(config, env={})

    message = str(caught.value)
    assert f"'{named}'" in message
    assert "\n" not in message
    assert message.endswith(".")


def test_background_is_normalised(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.yaml", {"images": {"background": " FF8000 "}})

    images = load_settings(config, env={}).images

    assert images.background == "#ff8000"
    assert images.background_rgb == (255, 128, 0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("embedding: [unclosed", "is not valid YAML"), ("- just\n- a list\n", "must be a mapping")],
)
def test_unreadable_config_is_a_config_error(tmp_path: Path, text: str, expected: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(text, encoding="utf-8")

    with pytest.raises(ConfigError, match=expected):
        load_settings(config, env={})


def test_env_overrides(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.yaml", {"data_dir": "ignored"})
    env = {
        "NFTLENS_DATA_DIR": str(tmp_path / "elsewhere"),
        "NFTLENS_VGG16_WEIGHTS": "none",
        "NFTLENS_IPFS_GATEWAY": "http://127.0.0.1:8080",
    }

    settings = load_settings(config, env=env)

    assert settings.data_dir == tmp_path / "elsewhere"
    assert settings.embedding.weights == "none"
    assert settings.fetch.ipfs_gateway == "http://127.0.0.1:8080"
    assert settings.db_url == f"sqlite:///{tmp_path / 'elsewhere' / 'nftlens.sqlite'}"


def test_the_database_url_and_its_password_come_from_the_environment(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.yaml", {"database_url": "postgresql://lens@db/other"})
    url = "postgresql://lens:s3cret-pass@db.internal:5432/nftlens"

    settings = load_settings(config, env={"NFTLENS_DATABASE_URL": url})
    plain = load_settings(config, env={})

    assert settings.db_url == "postgresql+psycopg://lens:s3cret-pass@db.internal:5432/nftlens"
    assert settings.database_password == "s3cret-pass"
    assert plain.database_password is None


def test_env_names_the_config_file(tmp_path: Path) -> None:
    config = write_config(tmp_path / "lens.yaml", {"search": {"default_k": 7}})

    settings = load_settings(env={"NFTLENS_CONFIG": str(config)})

    assert settings.search.default_k == 7


@pytest.mark.parametrize("via_env", [False, True])
def test_missing_explicit_config_is_an_error(tmp_path: Path, via_env: bool) -> None:
    missing = tmp_path / "nope.yaml"

    with pytest.raises(ConfigError, match="does not exist"):
        if via_env:
            load_settings(env={"NFTLENS_CONFIG": str(missing)})
        else:
            load_settings(missing, env={})


def test_no_config_file_at_all_gives_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    settings = load_settings(env={})

    assert settings.embedding.input_size == 96
    assert settings.data_dir == tmp_path / "data"


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path / "c.yaml", {}), env={})

    with pytest.raises(ValidationError):
        settings.embedding.input_size = 5  # type: ignore[misc]
    with pytest.raises(ValidationError):
        settings.data_dir = tmp_path  # type: ignore[misc]
    assert settings.embedding.input_size == 96


def test_secrets_come_from_env_and_stay_hidden() -> None:
    secrets = Secrets.from_env({"OPENSEA_API_KEY": "sk-very-secret"})

    assert secrets.opensea_api_key is not None
    assert secrets.opensea_api_key.get_secret_value() == "sk-very-secret"
    assert "sk-very-secret" not in repr(secrets)
    assert Secrets.from_env({}).opensea_api_key is None
