"""Who may run admin-only commands; the one check every front end and later feature reuses."""

from __future__ import annotations

from collections.abc import Iterable

from bot.failures import NotAllowed
from core.config import AdminSettings


class Admins:
    """The configured admins: Telegram user ids, Discord user ids and Discord role ids."""

    def __init__(self, settings: AdminSettings) -> None:
        self._telegram = frozenset(settings.telegram_user_ids)
        self._discord_users = frozenset(settings.discord_user_ids)
        self._discord_roles = frozenset(settings.discord_role_ids)

    def telegram(self, user_id: int | None) -> bool:
        return user_id is not None and user_id in self._telegram

    def discord(self, user_id: int | None, role_ids: Iterable[int] = ()) -> bool:
        if user_id is not None and user_id in self._discord_users:
            return True
        return not self._discord_roles.isdisjoint(role_ids)

    @staticmethod
    def require(allowed: bool) -> None:
        """Raise ``NotAllowed`` (a polite no for the user) unless ``allowed``."""
        if not allowed:
            raise NotAllowed()
