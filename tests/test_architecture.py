"""The layers run one way: core never imports a chat library or the bot, no feature imports the
composition root, and the core's packages import each other without a cycle."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

from tests.datasets import ROOT

CHAT_LIBRARIES = {"discord", "telegram"}
# The composition root and the CLI entry point that opens it: they import the features,
# never the other way round.
ROOT_MODULES = {"core.app", "core.cli", "core.__main__"}


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


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def unit(module: str) -> str:
    """The layer a core module belongs to: its package (``core.search``), or itself for a
    top-level module (``core.models``)."""
    return ".".join(module.split(".")[:2])


def core_modules() -> dict[str, set[str]]:
    """Each core module and the core modules it imports."""
    modules = sorted((ROOT / "core").rglob("*.py"))
    assert len(modules) > 40  # really scanning the engine
    return {
        module_name(path): {
            name for name in imported_modules(path.read_text(encoding="utf-8"))
            if name.split(".")[0] == "core"
        }
        for path in modules
    }  # fmt: skip


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """One cycle in ``graph`` as a list of nodes (first repeated last), or ``None``."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


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


def test_the_cycle_finder_finds_cycles() -> None:
    assert find_cycle({"a": ["b"], "b": ["c"], "c": []}) is None
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": ["a"]}) == ["a", "a"]


def test_core_imports_no_chat_library_and_not_the_bot() -> None:
    offenders = {
        str(path.relative_to(ROOT)): found
        for path in sorted((ROOT / "core").rglob("*.py"))
        if (
            found := {
                name
                for name in imported_modules(path.read_text(encoding="utf-8"))
                if name.split(".")[0] in CHAT_LIBRARIES | {"bot"}
            }
        )
    }

    assert offenders == {}


def test_no_feature_imports_the_composition_root() -> None:
    offenders = {
        module: sorted(imports & ROOT_MODULES)
        for module, imports in core_modules().items()
        if module not in ROOT_MODULES and imports & ROOT_MODULES
    }

    assert offenders == {}


def test_core_packages_import_each_other_without_a_cycle() -> None:
    graph: dict[str, set[str]] = {}
    for module, imports in core_modules().items():
        if module in ROOT_MODULES:
            continue
        graph.setdefault(unit(module), set()).update(
            unit(name) for name in imports if unit(name) != unit(module)
        )

    assert find_cycle(graph) is None


def test_the_bot_builds_no_engine_services_itself() -> None:
    # The bot gets every engine service from the root; building one here would make a
    # second, unshared copy (a second store, a second decoder pool).
    built_elsewhere = {
        "core.storage": "Storage.open",
        "core.imaging.workers": "DecoderPool(",
        "core.search.similar": "SimilarService(",
        "core.valuation": "SalesValuer(",
    }
    offenders = []
    for path in sorted((ROOT / "bot").rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        offenders += [
            f"{path.relative_to(ROOT)}: {call}"
            for call in built_elsewhere.values()
            if call in source
        ]

    assert offenders == []
