"""The console front end: a scripted session through stdin and stdout."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

from bot.commands import LensCommands
from bot.console import Console, read_lines
from tests.bot.fakes import CRITTERS, Library
from tests.datasets import ROOT, write_config

SCRIPT = f"""\
/help
/similar {{shot}} k=3
similar {CRITTERS}:5 k=2 in=sol-critters
/value {CRITTERS} 5
/collections
/status
/similar /no/such/file.png
/frobnicate

/quit
/collections
"""


async def test_scripted_session(lens: LensCommands, library: Library, tmp_path: Path) -> None:
    shot = library.critters / "images" / "5.png"
    stdin = io.StringIO(SCRIPT.format(shot=shot))
    stdout = io.StringIO()

    await Console(lens, tmp_path / "pictures", stdout).run(read_lines(stdin))

    out = stdout.getvalue()
    assert out.startswith("NFT Lens console.")
    assert "/similar FILE: Local image files work here too." in out
    assert f"3 look-alikes for {shot}" in out
    assert f"1. {CRITTERS} #5 <https://opensea.io/assets/ethereum/" in out
    assert f"2 look-alikes in sol-critters for {CRITTERS} #5" in out
    assert "Collection median:" in out and "not a model estimate" in out
    assert "Tracked collections" in out
    assert "NFT Lens status" in out
    assert "error: '/no/such/file.png' is not an image file" in out
    assert "Unknown command '/frobnicate'; try /help." in out
    assert out.rstrip().endswith("bye")
    # /quit ends the session: the /collections after it never runs.
    assert out.count("Tracked collections") == 1
    pictures = sorted(p.name for p in (tmp_path / "pictures").iterdir())
    assert [re.sub(r"-\d{8}T\d{6}-", "-", name) for name in pictures] == [
        "similar-001.png",
        "similar-002.png",
        "value-003.png",
    ]
    assert f"picture: {tmp_path / 'pictures' / pictures[-1]}" in out
    assert "Traceback" not in out


def test_python_m_bot_console_runs_without_any_token(library: Library, tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yaml", {"bot": {"console_dir": str(tmp_path)}})
    env = {
        **os.environ,
        "NFTLENS_CONFIG": str(config),
        "NFTLENS_DATA_DIR": str(library.root / "data"),
        "NFTLENS_VGG16_WEIGHTS": "none",
    }
    for secret in ("TELEGRAM_BOT_TOKEN", "DISCORD_BOT_TOKEN"):
        env.pop(secret, None)

    done = subprocess.run(
        [sys.executable, "-m", "bot", "console"],
        input=f"/value {CRITTERS} 3\n/collections\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    assert f"{CRITTERS} #3" in done.stdout and "Tracked collections" in done.stdout
    (picture,) = tmp_path.glob("value-*-001.png")
    assert picture.stat().st_size > 0
    assert done.stdout.rstrip().endswith("bye")
