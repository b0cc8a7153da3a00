"""Answers as chat text, in each platform's markup: Telegram HTML, Discord Markdown, plain."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from bot.commands import CollectionsAnswer, SimilarAnswer, StatusAnswer, ValueAnswer
from core.models import Collection, Match, Sale


class Markup(Protocol):
    """How one platform writes emphasis and links; ``escape`` makes user text inert."""

    def escape(self, text: str) -> str: ...

    def bold(self, text: str) -> str: ...

    def link(self, text: str, url: str) -> str: ...

    def code(self, text: str) -> str: ...


class PlainMarkup:
    """The console: no markup, links written out."""

    def escape(self, text: str) -> str:
        return text

    def bold(self, text: str) -> str:
        return text

    def link(self, text: str, url: str) -> str:
        return f"{text} <{url}>"

    def code(self, text: str) -> str:
        return text


class HtmlMarkup:
    """Telegram's ``parse_mode=HTML``."""

    def escape(self, text: str) -> str:
        return html.escape(text, quote=False)

    def bold(self, text: str) -> str:
        return f"<b>{text}</b>"

    def link(self, text: str, url: str) -> str:
        return f'<a href="{html.escape(url, quote=True)}">{text}</a>'

    def code(self, text: str) -> str:
        return f"<code>{html.escape(text, quote=False)}</code>"


class MarkdownMarkup:
    """Discord's Markdown; link targets in angle brackets so Discord adds no previews."""

    # Emphasis, code, spoiler and link characters anywhere; headings, quotes and list
    # markers only where they would start a line.
    _SPECIAL = re.compile(r"([\\*_~`|\[\]])")
    _LEADING = re.compile(r"^([#>-])", re.MULTILINE)

    def escape(self, text: str) -> str:
        return self._LEADING.sub(r"\\\1", self._SPECIAL.sub(r"\\\1", text))

    def bold(self, text: str) -> str:
        return f"**{text}**"

    def link(self, text: str, url: str) -> str:
        return f"[{text}](<{url}>)"

    def code(self, text: str) -> str:
        return f"`{text.replace('`', '')}`"


PLAIN = PlainMarkup()
HTML = HtmlMarkup()
MARKDOWN = MarkdownMarkup()


@dataclass(frozen=True)
class HelpTopic:
    command: str
    summary: str
    examples: tuple[str, ...]


HELP = (
    HelpTopic(
        "/similar",
        "NFTs that look like a picture: attach one, reply to one, or give an "
        "image URL or a token. Options: k=N (up to 20), in=COLLECTION.",
        (
            "/similar cryptopunks 7804",
            "/similar https://example.com/ape.png k=10",
            "/similar cryptopunks:7804 in=moonbirds",
        ),
    ),
    HelpTopic(
        "/value",
        "What a token is worth: an estimate with its 80% range, what drove it, comparable "
        "sales and a price chart.",
        ("/value cryptopunks 7804", "/value https://opensea.io/assets/ethereum/0x…/7804"),
    ),
    HelpTopic("/collections", "The tracked collections, with token and sale counts.", ()),
    HelpTopic("/help", "This message.", ()),
    HelpTopic(
        "/track",
        "Admins: follow a collection (OpenSea or Magic Eden URL, or slug); it is synced, "
        "indexed and kept current.",
        ("/track https://opensea.io/collection/boredapeyachtclub", "/track okay_bears magiceden"),
    ),
    HelpTopic("/untrack", "Admins: stop following a collection (its data stays).", ()),
    HelpTopic(
        "/digest",
        "Admins: a collection's visual groups, their sales and which are moving; "
        "or schedule one for this chat.",
        (
            "/digest cryptopunks",
            "/digest subscribe cryptopunks weekly",
            "/digest list",
            "/digest unsubscribe cryptopunks",
        ),
    ),
)


def track_started_text(collection: Collection) -> str:
    """The reply to /track; progress follows in later messages (plain text everywhere)."""
    where = "Magic Eden" if collection.marketplace == "magiceden" else "OpenSea"
    return (
        f"Following {collection.name} ({collection.slug}) on {where}. Syncing its sales and "
        "tokens now; I will post progress here and say when /similar and /value can use it."
    )


def untrack_text(slug: str, was_following: bool) -> str:
    if not was_following:
        return f"{slug} was not being followed."
    return f"Stopped following {slug}; its sales and tokens stay searchable."


def help_text(markup: Markup, extra: tuple[HelpTopic, ...] = ()) -> str:
    lines = [markup.bold("NFT Lens") + " finds look-alike NFTs and reads their sales."]
    for topic in HELP + extra:
        lines.append(f"{markup.bold(topic.command)}: {markup.escape(topic.summary)}")
        lines.extend(f"   {markup.code(example)}" for example in topic.examples)
    return "\n".join(lines)


def similar_summary(answer: SimilarAnswer, markup: Markup) -> str:
    """One line to go with the collage."""
    n = len(answer.result.matches)
    scope = f" in {answer.collection_filter}" if answer.collection_filter else ""
    if n == 0:
        return markup.escape(f"No look-alikes found{scope} for {answer.label}.")
    return markup.escape(f"{n} look-alike{'s' if n != 1 else ''}{scope} for {answer.label}")


def similar_text(answer: SimilarAnswer, markup: Markup) -> str:
    """The ranked matches, one line each, with marketplace links."""
    if not answer.result.matches:
        hint = " (is that collection indexed?)" if answer.collection_filter else ""
        return similar_summary(answer, markup) + markup.escape(hint)
    lines = [similar_summary(answer, markup)]
    for rank, match in enumerate(answer.result.matches, start=1):
        name = markup.escape(f"{match.collection} #{match.token_id}")
        url = token_url(answer.collections.get(match.collection), match)
        shown = markup.link(name, url) if url else name
        sale = markup.escape(sale_text(match.last_sale))
        lines.append(f"{rank}. {shown} · {match.score:.0%} alike · {sale}")
    return "\n".join(lines)


def value_text(answer: ValueAnswer, markup: Markup) -> str:
    value = answer.value
    name = markup.escape(f"{value.collection} #{value.token_id}")
    url = token_url(answer.collection, None, value.token_id)
    lines = [markup.bold(markup.link(name, url) if url else name)]
    estimate = answer.estimate
    if estimate is not None:
        usd = f" (${estimate.usd:,.0f})" if estimate.usd is not None else ""
        lines.append(
            markup.bold(
                markup.escape(f"Estimate: {_price(estimate.estimate, estimate.currency)}{usd}")
            )
        )
        lines.append(
            markup.escape(
                f"80% range: {_price(estimate.low, estimate.currency)} – "
                f"{_price(estimate.high, estimate.currency)}"
            )
        )
        lines.append(markup.escape(estimate.reason))
        if estimate.rarity_rank is not None:
            lines.append(
                markup.escape(f"Rarity rank: {estimate.rarity_rank:,} of {estimate.supply:,}")
            )
        if estimate.comps:
            comps = ", ".join(
                f"#{c.token_id} {_price(c.price, c.currency)} ({_day(c.timestamp)})"
                for c in estimate.comps
            )
            lines.append(markup.escape(f"Looks like: {comps}"))
    sale = value.last_sale
    if sale is None:
        lines.append("Last sale: none recorded")
    else:
        price = _price(sale.price, sale.currency)
        lines.append(markup.escape(f"Last sale: {price} on {_day(sale.timestamp)}"))
    if value.recent_median is None or value.window_start is None or value.window_end is None:
        lines.append(markup.escape("Collection: no recorded sales to compare with."))
    else:
        window = f"{_day(value.window_start)} – {_day(value.window_end)}"
        lines.append(
            markup.escape(
                f"Collection median: {_price(value.recent_median, value.currency)} "
                f"({value.sales_count} sale{'s' if value.sales_count != 1 else ''}, {window})"
            )
        )
        trend = value.trend
        if trend is None:
            lines.append(markup.escape("Trend: too few sales to tell."))
        else:
            arrow = "▲" if trend > 0 else "▼" if trend < 0 else "▶"
            lines.append(
                markup.escape(
                    f"Trend: {arrow} {trend:+.0%} against the {value.window_days} days before "
                    f"({value.previous_count} sales)"
                )
            )
    if estimate is None:
        lines.append(markup.escape(value.note + " No price model has been trained yet."))
    else:
        lines.append(markup.escape(f"Model {estimate.model}, as of {_day(estimate.at)}."))
    return "\n".join(lines)


def collections_text(answer: CollectionsAnswer, markup: Markup) -> str:
    if not answer.rows:
        return markup.escape("No collections are tracked yet.")
    lines = [markup.bold("Tracked collections")]
    for row in answer.rows:
        sale = row.latest_sale
        latest = f"latest sale {_day(sale.timestamp)}" if sale else "no sales"
        lines.append(
            f"• {markup.bold(markup.escape(row.collection.slug))} "
            + markup.escape(
                f"({row.collection.name}, {row.collection.chain}): {row.tokens:,} tokens, "
                f"{row.sales:,} sales, {latest}"
            )
        )
    return "\n".join(lines)


def status_text(answer: StatusAnswer, markup: Markup) -> str:
    index = f"{answer.indexed:,} vectors" if answer.indexed is not None else "not built"
    lines = [
        markup.bold("NFT Lens status"),
        markup.escape(
            f"Up {_duration(answer.uptime_s)}; index: {index}; {answer.collections} collection(s)."
        ),
        markup.escape(
            f"Answered {answer.answered}, failed {answer.failed}, "
            f"rate-limited {answer.rate_limited}; waiting now {answer.pending} "
            f"of {answer.capacity}."
        ),
    ]
    for job in answer.jobs:
        run = job.last_run
        if run is None:
            last = "never run"
        else:
            detail = run.error if run.status == "failed" else run.summary
            last = f"{run.status} {_day_time(run.started_at)}" + (f" ({detail})" if detail else "")
        nxt = f"; next {_day_time(job.next_run)}" if job.next_run else ""
        lines.append(markup.escape(f"Job {job.name}: {last}{nxt}"))
    return "\n".join(lines)


def token_url(
    collection: Collection | None, match: Match | None, token_id: str = ""
) -> str | None:
    """The token's page on its collection's marketplace, when we know enough to build it."""
    if collection is None:
        return None
    token = match.token_id if match is not None else token_id
    if collection.marketplace == "magiceden" or collection.chain == "solana":
        return f"https://magiceden.io/item-details/{token}"
    if collection.contract:
        return f"https://opensea.io/assets/{collection.chain}/{collection.contract}/{token}"
    return None


def sale_text(sale: Sale | None) -> str:
    if sale is None:
        return "no sales"
    return f"last {_price(sale.price, sale.currency)} ({_day(sale.timestamp)})"


def collection_map(collections: list[Collection]) -> Mapping[str, Collection]:
    return {collection.slug: collection for collection in collections}


def _price(price: float, currency: str) -> str:
    return f"{price:.4g} {currency}"


def _day(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d}"


def _day_time(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s"
