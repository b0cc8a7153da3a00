"""Settings: config.yaml validated once into frozen pydantic models, plus env overrides."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, Literal

import yaml
from apscheduler.triggers.cron import CronTrigger
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from core.errors import ConfigError
from core.models import is_slug
from core.posting import ChatTarget

DEFAULT_CONFIG = Path("config.yaml")

log = logging.getLogger(__name__)


def _collection_slug(value: str) -> str:
    if not is_slug(value):
        raise ValueError(f"'{value}' is not a valid collection slug")
    return value


CollectionSlug = Annotated[str, AfterValidator(_collection_slug)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ImageSettings(_Frozen):
    """Decoding caps, the decoding workers' limits, and the colour behind transparent art."""

    background: str = "#808080"
    max_bytes: Annotated[int, Field(gt=0)] = 20 * 1024 * 1024
    max_pixels: Annotated[int, Field(gt=0)] = 40_000_000
    # Untrusted images are decoded in worker processes, each task within these caps: `workers`
    # for people's queries, `background_workers` for index and ingest.
    workers: Annotated[int, Field(ge=1, le=64)] = 2
    background_workers: Annotated[int, Field(ge=1, le=64)] = 2
    worker_memory_mb: Annotated[int, Field(ge=256, le=65_536)] = 1024
    decode_cpu_s: Annotated[float, Field(gt=0, le=600)] = 4.0
    decode_timeout_s: Annotated[float, Field(gt=0, le=600)] = 5.0

    @field_validator("background")
    @classmethod
    def _hex_colour(cls, value: str) -> str:
        text = value.strip().lstrip("#")
        if len(text) != 6 or any(c not in "0123456789abcdefABCDEF" for c in text):
            raise ValueError("must be a colour like '#808080'")
        return "#" + text.lower()

    @property
    def background_rgb(self) -> tuple[int, int, int]:
        text = self.background.lstrip("#")
        return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)


class EmbeddingSettings(_Frozen):
    """The VGG16 feature extractor: weights, input size, pooling, batching."""

    weights: str = "imagenet"
    input_size: Annotated[int, Field(ge=32, le=512)] = 96
    layer: Literal[
        "block3_conv3", "block3_pool", "block4_conv3", "block4_pool", "block5_conv3", "block5_pool"
    ] = "block4_conv3"
    pooling: Literal["avg", "max", "gem"] = "gem"
    grid: Annotated[int, Field(ge=1, le=8)] = 4
    projection_dim: Annotated[int, Field(ge=0, le=8192)] = 1024
    colour_grid: Annotated[int, Field(ge=1, le=64)] = 8
    colour_weight: Annotated[float, Field(ge=0, le=4)] = 0.15
    precision: Literal["float32", "bfloat16"] = "float32"
    # keras: TensorFlow float32 (the reference, and the GPU path). openvino-int8: the trunk in
    # INT8 on the CPU, converted and calibrated by the engine on its own images (one time).
    # auto: INT8 when OpenVINO is installed, the CPU has fast integer instructions, there is
    # no GPU, and the INT8 vectors pass the quality check below; Keras otherwise.
    runtime: Literal["auto", "keras", "openvino-int8"] = "auto"
    int8_min_cosine: Annotated[float, Field(ge=0, le=1)] = 0.995
    int8_min_neighbours: Annotated[float, Field(ge=0, le=1)] = 0.97
    calibration_images: Annotated[int, Field(ge=100, le=10_000)] = 300
    batch_size: Annotated[int, Field(ge=1, le=512)] = 16
    decode_workers: Annotated[int, Field(ge=1, le=32)] = 2
    max_concurrent: Annotated[int, Field(ge=1, le=64)] = 1


class IndexSettings(_Frozen):
    """FAISS: exact inner product up to ``approximate_above`` vectors, ``approximate`` past it."""

    approximate_above: Annotated[int, Field(ge=0)] = 50_000
    approximate: Literal["ivf", "hnsw"] = "ivf"
    # IVF: the shortlist is searched on vectors reduced to pca_dim by PCA, probing nprobe
    # lists, and rerank_factor × k of it are re-ranked on the full vectors.
    pca_dim: Annotated[int, Field(ge=16, le=4096)] = 256
    nprobe: Annotated[int, Field(ge=1, le=4096)] = 16
    rerank_factor: Annotated[int, Field(ge=1, le=100)] = 5
    hnsw_m: Annotated[int, Field(ge=4, le=128)] = 32
    hnsw_ef_search: Annotated[int, Field(ge=8, le=4096)] = 128


class FetchSettings(_Frozen):
    """Fetching query images from URLs."""

    timeout_s: Annotated[float, Field(gt=0, le=120)] = 15.0
    max_bytes: Annotated[int, Field(gt=0)] = 20 * 1024 * 1024
    ipfs_gateway: str = "https://ipfs.io"
    # Tried in turn when the gateway above cannot serve an ipfs:// image.
    ipfs_fallback_gateways: tuple[str, ...] = ("https://dweb.link",)


class ApiSettings(_Frozen):
    """One HTTP API the engine reads: its root URL and how hard it may be asked."""

    api_root: str
    # Requests per second to this host; a burst waits its turn.
    requests_per_s: Annotated[float, Field(gt=0, le=100)] = 2.0
    # Items asked for per page.
    page_size: Annotated[int, Field(ge=1, le=1000)] = 100

    @field_validator("api_root")
    @classmethod
    def _root(cls, value: str) -> str:
        return _url_root(value)


class OpenSeaSettings(ApiSettings):
    """OpenSea v2: the client calls <api_root>/api/v2/...; OPENSEA_API_KEY goes as X-API-KEY."""

    api_root: str = "https://api.opensea.io"
    requests_per_s: Annotated[float, Field(gt=0, le=100)] = 4.0
    page_size: Annotated[int, Field(ge=1, le=200)] = 200


class MagicEdenSettings(ApiSettings):
    """Magic Eden v2 (Solana): the client calls <api_root>/v2/...; reads need no key."""

    api_root: str = "https://api-mainnet.magiceden.dev"
    requests_per_s: Annotated[float, Field(gt=0, le=100)] = 2.0
    page_size: Annotated[int, Field(ge=1, le=1000)] = 500


class PricesSettings(ApiSettings):
    """A CoinGecko-style price API: <api_root>/api/v3/simple/price?ids=...&vs_currencies=usd."""

    api_root: str = "https://api.coingecko.com"
    requests_per_s: Annotated[float, Field(gt=0, le=100)] = 0.5


class MarketplaceSettings(_Frozen):
    """The marketplaces and the USD price API, and how their calls retry."""

    opensea: OpenSeaSettings = OpenSeaSettings()
    magiceden: MagicEdenSettings = MagicEdenSettings()
    prices: PricesSettings = PricesSettings()
    timeout_s: Annotated[float, Field(gt=0, le=300)] = 20.0
    # 5xx, resets, timeouts and malformed pages are retried this many times, waiting
    # backoff_s, 2·backoff_s, 4·backoff_s ... (capped at max_backoff_s, with jitter).
    max_retries: Annotated[int, Field(ge=0, le=20)] = 5
    backoff_s: Annotated[float, Field(ge=0, le=60)] = 1.0
    max_backoff_s: Annotated[float, Field(ge=0, le=3600)] = 60.0
    # A 429's Retry-After is honoured up to this long; longer ends the run with an error.
    max_retry_after_s: Annotated[float, Field(ge=0, le=3600)] = 300.0


class FollowedCollection(_Frozen):
    """A collection the bot keeps current: its slug (Magic Eden: its symbol) and source."""

    slug: CollectionSlug
    marketplace: Literal["opensea", "magiceden"] = "opensea"
    # Sync this collection every N minutes (unset: sync.every_minutes).
    every_minutes: Annotated[float, Field(gt=0, le=60 * 24 * 31)] | None = None


class SyncSettings(_Frozen):
    """``sync``: which collections follow their marketplace, how often and how far back."""

    collections: tuple[FollowedCollection, ...] = ()
    # A followed collection is synced when the `sync` job finds it this many minutes stale.
    every_minutes: Annotated[float, Field(gt=0, le=60 * 24 * 31)] = 30.0
    # Each sync asks again for the last overlap_minutes before its checkpoint: marketplaces
    # index some sales late, and the natural key makes the repeats free.
    overlap_minutes: Annotated[float, Field(ge=0, le=7 * 24 * 60)] = 60.0
    # How far back a collection's first sync reaches; 0: its whole history.
    history_days: Annotated[float, Field(ge=0, le=36_500)] = 90.0
    # New tokens' metadata and images fetched at once, and at most this many per run (the
    # rest follow on the next run).
    token_concurrency: Annotated[int, Field(ge=1, le=64)] = 8
    max_new_tokens: Annotated[int, Field(ge=1, le=1_000_000)] = 5000
    # A token whose metadata or image failed is tried again after retry_hours·attempts.
    retry_hours: Annotated[float, Field(gt=0, le=24 * 30)] = 1.0


class DigestPost(_Frozen):
    """An operator's scheduled digest: a collection, where it goes, and when."""

    collection: CollectionSlug
    to: str
    cron: str
    window_days: Annotated[int, Field(ge=1, le=365)] | None = None

    @field_validator("to")
    @classmethod
    def _target(cls, value: str) -> str:
        try:
            ChatTarget.parse(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        JobTrigger(cron=value)
        return value


class DigestSettings(_Frozen):
    """Cluster digests: how groups are found, what a digest shows, and when it is posted."""

    # Clusters per collection; 0 chooses k by the silhouette score over k_min..k_max.
    k: Annotated[int, Field(ge=0, le=200)] = 0
    k_min: Annotated[int, Field(ge=2, le=200)] = 4
    k_max: Annotated[int, Field(ge=2, le=200)] = 16
    # A full re-clustering happens when the clusters are older than this or the collection
    # grew by more than recluster_growth; in between new tokens join the nearest cluster.
    recluster_days: Annotated[float, Field(gt=0, le=365)] = 7.0
    recluster_growth: Annotated[float, Field(gt=0, le=10)] = 0.2
    # The window compared with the one before it.
    window_days: Annotated[int, Field(ge=1, le=365)] = 7
    # Movers need this many sales in both windows; at most `movers` and `largest` groups.
    min_sales: Annotated[int, Field(ge=1, le=1000)] = 3
    movers: Annotated[int, Field(ge=0, le=20)] = 3
    largest: Annotated[int, Field(ge=0, le=20)] = 3
    montage_tokens: Annotated[int, Field(ge=1, le=24)] = 6
    # Operators' scheduled digests, beside the ones admins subscribe to with /digest.
    posts: tuple[DigestPost, ...] = ()

    @model_validator(mode="after")
    def _range(self) -> DigestSettings:
        if self.k_min > self.k_max:
            raise ValueError("k_min must not exceed k_max")
        return self


class SearchSettings(_Frozen):
    """Defaults and bounds for ``similar``."""

    default_k: Annotated[int, Field(ge=1, le=100)] = 5
    max_k: Annotated[int, Field(ge=1, le=1000)] = 50


class ValuationSettings(_Frozen):
    """``value``: the price model's limits, and the sales-based answer it falls back on."""

    window_days: Annotated[int, Field(ge=1, le=3650)] = 30
    chart_days: Annotated[int, Field(ge=1, le=36500)] = 180
    # A collection needs this many sales before a model is trained for it.
    min_sales: Annotated[int, Field(ge=50, le=1_000_000)] = 200
    # Trained models kept per collection (the newest; older artefacts are deleted).
    keep_models: Annotated[int, Field(ge=1, le=1000)] = 10


_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def crontab_fields(line: str) -> dict[str, str]:
    """A five-field crontab line as APScheduler ``CronTrigger`` keyword arguments.

    APScheduler 3 numbers weekdays from Monday (0) where crontab numbers them from Sunday
    (0 or 7), and ``CronTrigger.from_crontab`` passes them through unchanged, so "1-5" would
    run Tuesday to Saturday. The day-of-week field is therefore expanded here into day names.
    """
    parts = line.split()
    if len(parts) != 5:
        raise ValueError(f"cron '{line}' needs five fields: minute hour day month weekday")
    minute, hour, day, month, weekday = parts
    if day != "*" and weekday != "*":
        # Crontab runs when either matches; APScheduler only when both do.
        raise ValueError(
            f"cron '{line}' restricts both day of month and weekday; keep one of them '*'"
        )
    return {
        "minute": minute,
        "hour": hour,
        "day": day,
        "month": month,
        "day_of_week": _crontab_weekdays(weekday),
    }


def _crontab_weekdays(field: str) -> str:
    days: set[int] = set()
    for item in field.lower().split(","):
        spec, _, step_text = item.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            raise ValueError(f"'{item}' is not a weekday step")
        if spec == "*":
            first, last = 0, 6
        elif "-" in spec:
            first, last = (_weekday(end) for end in spec.split("-", 1))
            last = 7 if last == 0 and first > 0 else last
        else:
            first = last = _weekday(spec)
            if step is not None:
                last = 6
        if first > last:
            raise ValueError(f"'{item}' is not a weekday range")
        days.update(day % 7 for day in range(first, last + 1, step or 1))
    if len(days) == 7:
        return "*"
    return ",".join(_WEEKDAYS[day] for day in sorted(days))


def _weekday(text: str) -> int:
    if text.isdigit() and 0 <= int(text) <= 7:
        return int(text)
    if text[:3] in _WEEKDAYS:
        return _WEEKDAYS.index(text[:3])
    raise ValueError(f"'{text}' is not a weekday")


class JobTrigger(_Frozen):
    """When a scheduled job runs: every N minutes or on a cron line, give or take a jitter."""

    enabled: bool = True
    every_minutes: Annotated[float, Field(gt=0, le=60 * 24 * 31)] | None = None
    # Five crontab fields in UTC: minute hour day-of-month month day-of-week.
    cron: str | None = None
    # Each start moves by up to this many seconds, so many bots do not hit an API at once.
    jitter_s: Annotated[int, Field(ge=0, le=3600)] = 60

    @model_validator(mode="after")
    def _one_schedule(self) -> JobTrigger:
        if (self.every_minutes is None) == (self.cron is None):
            raise ValueError("give exactly one of every_minutes and cron")
        if self.cron is not None:
            fields = crontab_fields(self.cron)
            try:
                CronTrigger(**fields)
            except ValueError as exc:
                raise ValueError(f"cron '{self.cron}' is not a valid crontab line") from exc
        return self

    def describe(self) -> str:
        """The schedule in words, e.g. 'every 15 min' or 'cron 17 4 * * *'."""
        if self.every_minutes is not None:
            return f"every {self.every_minutes:g} min"
        return f"cron {self.cron}"


class JobsSettings(_Frozen):
    """The scheduled jobs the bot process runs, and where their failures are reported."""

    # Embed new tokens and refresh the similarity index.
    index: JobTrigger = JobTrigger(every_minutes=15)
    # Remove temporary files that killed processes left behind.
    housekeeping: JobTrigger = JobTrigger(cron="17 4 * * *", jitter_s=300)
    # Retrain the price model of every collection with enough sales, on all of them.
    train: JobTrigger = JobTrigger(cron="40 3 * * *", jitter_s=300)
    # Sync each followed collection that is due (sync.every_minutes or its own interval),
    # and the day's floors and USD rates.
    sync: JobTrigger = JobTrigger(every_minutes=5, jitter_s=30)
    # Post the digests chats subscribed to (daily or weekly) that are due.
    digests: JobTrigger = JobTrigger(every_minutes=15, jitter_s=60)
    # A run that was due while the bot was down (or busy) still runs when the bot is back, if
    # it is at most this late; runs that piled up are coalesced into one.
    misfire_grace_s: Annotated[int, Field(ge=1, le=7 * 86_400)] = 12 * 3600
    # Chats told when a job fails: "telegram:CHAT_ID", "discord:CHANNEL_ID", "console:NAME".
    alerts: tuple[str, ...] = ()

    @field_validator("alerts")
    @classmethod
    def _targets(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for target in value:
            try:
                ChatTarget.parse(target)
            except ConfigError as exc:
                raise ValueError(str(exc)) from exc
        return value


class RateLimit(_Frozen):
    """At most ``requests`` commands per ``per_s`` seconds (a sliding window)."""

    requests: Annotated[int, Field(ge=1, le=100_000)]
    per_s: Annotated[float, Field(gt=0, le=86_400)]


class AdminSettings(_Frozen):
    """Who may run admin-only commands: Telegram/Discord user ids, Discord role ids."""

    telegram_user_ids: tuple[int, ...] = ()
    discord_user_ids: tuple[int, ...] = ()
    discord_role_ids: tuple[int, ...] = ()


class TelegramSettings(_Frozen):
    """The Telegram front end; it starts when ``TELEGRAM_BOT_TOKEN`` is set."""

    api_root: str = "https://api.telegram.org"
    mode: Literal["polling", "webhook"] = "polling"
    poll_timeout_s: Annotated[float, Field(ge=0, le=50)] = 30.0
    # Webhook mode only: the public https URL Telegram posts to, and where we listen.
    webhook_url: str | None = None
    webhook_listen: str = "0.0.0.0"
    webhook_port: Annotated[int, Field(ge=1, le=65535)] = 8443

    @field_validator("api_root")
    @classmethod
    def _root(cls, value: str) -> str:
        return _url_root(value)

    @model_validator(mode="after")
    def _webhook_needs_url(self) -> TelegramSettings:
        if self.mode == "webhook" and not self.webhook_url:
            raise ValueError("webhook mode needs webhook_url (the public https URL)")
        return self


class DiscordSettings(_Frozen):
    """The Discord front end; it starts when ``DISCORD_BOT_TOKEN`` is set.

    ``api_root`` unset means Discord itself; a root like ``http://127.0.0.1:8080`` serves REST
    under ``<root>/api/v10`` and the gateway at ``ws://127.0.0.1:8080/gateway``.
    """

    api_root: str | None = None
    # "guild": sync slash commands to ``guild_ids`` only (instant; for development);
    # "global": everywhere (Discord may take a while to show changes); "off": leave as is.
    command_sync: Literal["guild", "global", "off"] = "global"
    guild_ids: tuple[int, ...] = ()
    # After READY the gateway streams one GUILD_CREATE per server; the client waits this long
    # after the last one before it counts as ready (discord.py's default is 2 s).
    guild_ready_timeout_s: Annotated[float, Field(ge=0, le=60)] = 2.0

    @field_validator("api_root")
    @classmethod
    def _root(cls, value: str | None) -> str | None:
        return _url_root(value) if value else None


class BotSettings(_Frozen):
    """The chat front ends: limits, admins and per-platform connection settings."""

    user_rate_limit: RateLimit = RateLimit(requests=6, per_s=60)
    chat_rate_limit: RateLimit = RateLimit(requests=30, per_s=60)
    # Requests waiting for the engine beyond this get "busy, try again" instead of queueing.
    max_pending: Annotated[int, Field(ge=1, le=10_000)] = 64
    # Collage and chart drawing that may run at once, beside the embedding bound.
    max_concurrent_renders: Annotated[int, Field(ge=1, le=64)] = 2
    admins: AdminSettings = AdminSettings()
    telegram: TelegramSettings = TelegramSettings()
    discord: DiscordSettings = DiscordSettings()
    # Where ``python -m bot console`` writes its pictures; unset: <data_dir>/console.
    console_dir: Path | None = None


class Settings(_Frozen):
    """Everything non-secret, as loaded from config.yaml and the environment."""

    data_dir: Path = Path("data")
    database_url: str | None = None
    images: ImageSettings = ImageSettings()
    embedding: EmbeddingSettings = EmbeddingSettings()
    index: IndexSettings = IndexSettings()
    fetch: FetchSettings = FetchSettings()
    marketplaces: MarketplaceSettings = MarketplaceSettings()
    sync: SyncSettings = SyncSettings()
    digest: DigestSettings = DigestSettings()
    search: SearchSettings = SearchSettings()
    valuation: ValuationSettings = ValuationSettings()
    jobs: JobsSettings = JobsSettings()
    bot: BotSettings = BotSettings()

    @property
    def database_password(self) -> str | None:
        """The password inside ``database_url``, if any (so logs can scrub it)."""
        if not self.database_url:
            return None
        try:
            return make_url(self.database_url).password
        except ArgumentError:
            return None

    @property
    def db_url(self) -> str:
        url = self.database_url or f"sqlite:///{self.data_dir / 'nftlens.sqlite'}"
        # Plain postgresql:// means psycopg2 to SQLAlchemy; we ship psycopg 3.
        if url.startswith(("postgresql://", "postgres://")):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return url


class Secrets(_Frozen):
    """Credentials, only ever from the environment; never logged (SecretStr hides them)."""

    opensea_api_key: SecretStr | None = None
    telegram_bot_token: SecretStr | None = None
    discord_bot_token: SecretStr | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Secrets:
        env = dict(os.environ) if env is None else env

        key = env.get("OPENSEA_API_KEY") or None

        def token(name: str) -> SecretStr | None:
            # A token pasted with a stray newline or space would fail login confusingly.
            value = (env.get(name) or "").strip()
            return SecretStr(value) if value else None

        return cls(
            opensea_api_key=SecretStr(key) if key else None,
            telegram_bot_token=token("TELEGRAM_BOT_TOKEN"),
            discord_bot_token=token("DISCORD_BOT_TOKEN"),
        )


def load_settings(path: Path | None = None, env: dict[str, str] | None = None) -> Settings:
    """Read the config file (``NFTLENS_CONFIG`` or ./config.yaml), then apply env overrides.

    A relative ``data_dir`` is taken relative to the config file, so the bot finds its data
    wherever it is started from.
    """
    env = dict(os.environ) if env is None else env
    explicit = path or (Path(env["NFTLENS_CONFIG"]) if env.get("NFTLENS_CONFIG") else None)
    config_path = explicit or DEFAULT_CONFIG
    raw: dict[str, object] = {}
    if config_path.is_file():
        raw = _read_yaml(config_path)
        log.debug("settings from %s", config_path.resolve())
    elif explicit is not None:
        raise ConfigError(f"Config file {config_path} does not exist.")
    else:
        log.info("no config.yaml in %s; using built-in defaults", Path.cwd())
    _apply_env(raw, env)
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, config_path)) from exc
    if not settings.data_dir.is_absolute() and "NFTLENS_DATA_DIR" not in env:
        base = config_path.resolve().parent if config_path.is_file() else Path.cwd()
        settings = settings.model_copy(update={"data_dir": base / settings.data_dir})
    return settings


def _read_yaml(path: Path) -> dict[str, object]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read config file {path}: {exc}.") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"Config file {path} is not valid YAML: {exc}.") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"Config file {path} must be a mapping of settings.")
    return loaded


def _apply_env(raw: dict[str, object], env: dict[str, str]) -> None:
    def section(name: str) -> dict[str, object]:
        value = raw.setdefault(name, {})
        if not isinstance(value, dict):
            raise ConfigError(f"Config section '{name}' must be a mapping.")
        return value

    if env.get("NFTLENS_DATA_DIR"):
        raw["data_dir"] = env["NFTLENS_DATA_DIR"]
    if env.get("NFTLENS_DATABASE_URL"):
        # A URL with a password is a secret: it belongs in the environment, not config.yaml.
        raw["database_url"] = env["NFTLENS_DATABASE_URL"]
    if env.get("NFTLENS_VGG16_WEIGHTS"):
        section("embedding")["weights"] = env["NFTLENS_VGG16_WEIGHTS"]
    if env.get("NFTLENS_IPFS_GATEWAY"):
        section("fetch")["ipfs_gateway"] = env["NFTLENS_IPFS_GATEWAY"]
    for variable, service in (
        ("NFTLENS_OPENSEA_URL", "opensea"),
        ("NFTLENS_MAGICEDEN_URL", "magiceden"),
        ("NFTLENS_PRICES_URL", "prices"),
    ):
        if env.get(variable):
            service_section = section("marketplaces").setdefault(service, {})
            if not isinstance(service_section, dict):
                raise ConfigError(f"Config section 'marketplaces.{service}' must be a mapping.")
            service_section["api_root"] = env[variable]
    for variable, platform in (
        ("NFTLENS_TELEGRAM_API", "telegram"),
        ("NFTLENS_DISCORD_API", "discord"),
    ):
        if env.get(variable):
            platform_section = section("bot").setdefault(platform, {})
            if not isinstance(platform_section, dict):
                raise ConfigError(f"Config section 'bot.{platform}' must be a mapping.")
            platform_section["api_root"] = env[variable]


def _url_root(value: str) -> str:
    text = value.strip().rstrip("/")
    if not text.startswith(("http://", "https://")) or text.endswith("://"):
        raise ValueError("must be an http(s) URL like 'https://api.telegram.org'")
    return text


def _describe(exc: ValidationError, path: Path) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "config"
        if error["type"] == "extra_forbidden":
            problems.append(f"'{where}' is not a known setting")
        else:
            problems.append(f"'{where}' {error['msg'].lower()}")
    return f"Invalid settings in {path}: " + "; ".join(problems) + "."
