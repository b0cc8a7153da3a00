"""The engine never imports a chat library: ``core/`` stays usable without Discord or Telegram."""

from __future__ import annotations

import ast

from tests.datasets import ROOT

CHAT_LIBRARIES = {"discord", "telegram"}


def imported_modules(source: str) -> set[str]:
    """Every module named by an import statement in ``source`` (absolute imports only)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def chat_imports(source: str) -> set[str]:
    return {name for name in imported_modules(source) if name.split(".")[0] in CHAT_LIBRARIES}


def test_the_scan_sees_every_import_form() -> None:
    source = (
        "import discord\n"
        "import telegram.ext as tx\n"
        "from discord import app_commands\n"
        "def later():\n"
        "    from telegram import Bot\n"
        "import discordant\n"
        "from .telegram import x\n"
    )

    assert chat_imports(source) == {"discord", "telegram.ext", "telegram"}


def test_core_imports_no_chat_library() -> None:
    modules = sorted((ROOT / "core").rglob("*.py"))
    assert len(modules) > 20  # really scanning the engine

    offenders = {
        str(path.relative_to(ROOT)): found
        for path in modules
        if (found := chat_imports(path.read_text(encoding="utf-8")))
    }

    assert offenders == {}
