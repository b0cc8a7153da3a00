"""``python -m core`` as users and benchmarks run it: real processes, real (random) VGG16."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_runner import TOKENS, Cli, make_cli
from tests.datasets import ROOT, sale_rows


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    return make_cli(tmp_path_factory.mktemp("cli"))


@pytest.fixture(scope="module")
def ingested(cli: Cli) -> subprocess.CompletedProcess[str]:
    return cli.run("ingest", str(cli.dataset))


@pytest.fixture(scope="module")
def indexed(
    cli: Cli, ingested: subprocess.CompletedProcess[str]
) -> subprocess.CompletedProcess[str]:
    assert ingested.returncode == 0, ingested.stderr
    return cli.run("index")


@pytest.fixture(scope="module")
def mixed_queries(
    cli: Cli, indexed: subprocess.CompletedProcess[str]
) -> subprocess.CompletedProcess[str]:
    """One file query, one bad query in the middle, one token reference (embeds the file)."""
    assert indexed.returncode == 0, indexed.stderr
    punk = cli.dataset / "images" / "0.png"
    return cli.run("similar", str(punk), "no-such-query", "cryptopunks:2", "--k", "3", "--json")


def assert_clean_failure(process: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """The process failed with ``code`` and one ``error:`` line, never a traceback."""
    assert process.returncode == code
    assert "Traceback" not in process.stderr
    errors = [line for line in process.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1
    return errors[0]


def test_ingest_prints_a_summary(ingested: subprocess.CompletedProcess[str]) -> None:
    assert ingested.returncode == 0, ingested.stderr
    assert ingested.stdout.splitlines() == [
        "cryptopunks",
        "  tokens: 10 read, 10 added, 0 updated, 0 unchanged, 0 rejected",
        "  sales: 6 read, 6 added, 0 updated, 0 unchanged, 0 rejected",
    ]


def test_ingest_again_lists_rejected_rows(
    cli: Cli, indexed: subprocess.CompletedProcess[str]
) -> None:
    again = shutil.copytree(cli.dataset, cli.root / "punks-again")
    with (again / "tokens.jsonl").open("a", encoding="utf-8") as handle:
        handle.write('{"token_id": "77", "image": \n')

    process = cli.run("ingest", str(again))

    assert process.returncode == 0, process.stderr
    assert "  tokens: 11 read, 0 added, 0 updated, 10 unchanged, 1 rejected" in process.stdout
    assert "  sales: 6 read, 0 added, 0 updated, 6 unchanged, 0 rejected" in process.stdout
    assert "rejected tokens.jsonl:11: not valid JSON" in process.stderr


def test_index_prints_counts(indexed: subprocess.CompletedProcess[str]) -> None:
    assert indexed.returncode == 0, indexed.stderr
    assert indexed.stdout.startswith("embedded 10 images (")
    assert "0 failed; index holds 10 vectors (exact, rebuilt)" in indexed.stdout


def test_similar_json_prints_one_line_per_query(
    cli: Cli, mixed_queries: subprocess.CompletedProcess[str]
) -> None:
    lines = [json.loads(line) for line in mixed_queries.stdout.splitlines()]

    assert [line["query"] for line in lines] == [
        str(cli.dataset / "images" / "0.png"),
        "no-such-query",
        "cryptopunks:2",
    ]
    for line in (lines[0], lines[2]):
        matches = line["matches"]
        assert len(matches) == 3
        scores = [m["score"] for m in matches]
        assert scores == sorted(scores, reverse=True)
        for match in matches:
            assert {"collection", "token_id", "score", "image", "last_sale"} <= set(match)
            assert match["collection"] == "cryptopunks"
            assert isinstance(match["token_id"], str) and match["token_id"] in TOKENS
            assert isinstance(match["score"], float) and 0.0 <= match["score"] <= 1.0
            assert Path(match["image"]).is_file()
    assert "2" not in [m["token_id"] for m in lines[2]["matches"]]


def test_similar_json_own_image_first_with_its_last_sale(
    cli: Cli, mixed_queries: subprocess.CompletedProcess[str]
) -> None:
    first = json.loads(mixed_queries.stdout.splitlines()[0])["matches"][0]
    latest = max(sale_rows(cli.dataset, "0"), key=lambda row: row["timestamp"])

    assert first["token_id"] == "0"
    assert first["score"] == pytest.approx(1.0, abs=1e-4)
    assert first["last_sale"]["price"] == float(latest["price"])
    assert first["last_sale"]["currency"] == "ETH"
    assert first["last_sale"]["timestamp"] == latest["timestamp"]
    assert first["last_sale"]["tx"] == latest["tx"]


def test_similar_bad_query_in_the_middle(mixed_queries: subprocess.CompletedProcess[str]) -> None:
    error = json.loads(mixed_queries.stdout.splitlines()[1])

    assert mixed_queries.returncode == 1
    assert set(error) == {"query", "error"}
    assert error["query"] == "no-such-query"
    assert "is not an image file" in error["error"]
    assert "\n" not in error["error"] and len(error["error"]) < 200
    assert "Traceback" not in mixed_queries.stderr


def test_similar_token_reference_succeeds(
    cli: Cli, indexed: subprocess.CompletedProcess[str]
) -> None:
    as_json = cli.run("similar", "cryptopunks:3", "--k", "4", "--json")
    as_text = cli.run("similar", "cryptopunks:3")

    assert as_json.returncode == 0, as_json.stderr
    (line,) = [json.loads(text) for text in as_json.stdout.splitlines()]
    assert line["query"] == "cryptopunks:3"
    assert len(line["matches"]) == 4
    assert "3" not in [m["token_id"] for m in line["matches"]]
    assert as_text.returncode == 0, as_text.stderr
    text = as_text.stdout.splitlines()
    assert text[0] == "cryptopunks:3:"
    assert [row.split()[0] for row in text[1:]] == ["1.", "2.", "3.", "4.", "5."]
    # The text listing ranks the same tokens as the JSON one.
    assert [row.split()[2] for row in text[1:5]] == [m["token_id"] for m in line["matches"]]


def test_similar_unknown_collection_is_a_clean_error(
    cli: Cli, indexed: subprocess.CompletedProcess[str]
) -> None:
    process = cli.run("similar", "cryptopunks:3", "--collection", "nope")

    assert assert_clean_failure(process) == "error: No collection called 'nope' is tracked."
    assert process.stdout == ""


def test_similar_unknown_collection_in_json_is_an_error_line_per_query(
    cli: Cli, indexed: subprocess.CompletedProcess[str]
) -> None:
    queries = ("cryptopunks:3", "cryptopunks:4")
    process = cli.run("similar", *queries, "--collection", "nope", "--json")

    lines = [json.loads(line) for line in process.stdout.splitlines()]
    assert process.returncode == 1
    assert lines == [
        {"query": q, "error": "No collection called 'nope' is tracked."} for q in queries
    ]
    assert "Traceback" not in process.stderr


def test_similar_k_out_of_range(cli: Cli) -> None:
    process = cli.run("similar", "cryptopunks:3", "--k", "0")

    assert process.returncode == 2
    assert "--k must be between 1 and 50" in process.stderr
    assert process.stdout == ""


def test_similar_k_out_of_range_in_json_is_an_error_line_per_query(cli: Cli) -> None:
    process = cli.run("similar", "cryptopunks:3", "cryptopunks:4", "--k", "0", "--json")

    assert process.returncode == 2
    lines = [json.loads(line) for line in process.stdout.splitlines()]
    assert [line["query"] for line in lines] == ["cryptopunks:3", "cryptopunks:4"]
    assert all("--k must be between 1 and 50" in line["error"] for line in lines)


def test_similar_collection_is_read_like_chat_reads_it(
    cli: Cli, indexed: subprocess.CompletedProcess[str]
) -> None:
    assert indexed.returncode == 0, indexed.stderr

    process = cli.run("similar", "cryptopunks:3", "--collection", "CryptoPunks", "--json")

    assert process.returncode == 0, process.stderr
    assert {m["collection"] for m in json.loads(process.stdout)["matches"]} == {"cryptopunks"}


def test_an_unusable_data_directory_is_a_clean_error(cli: Cli, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory", encoding="utf-8")
    env = dict(cli.env, NFTLENS_DATA_DIR=str(blocker / "data"))

    process = subprocess.run(
        [sys.executable, "-m", "core", "status"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert "cannot be created" in assert_clean_failure(process)


def test_ingest_of_a_non_dataset_is_a_clean_error(cli: Cli) -> None:
    process = cli.run("ingest", str(cli.root / "nowhere"))

    assert "has no collection.json" in assert_clean_failure(process)


def test_status_lists_collections_counts_and_jobs(
    cli: Cli, indexed: subprocess.CompletedProcess[str]
) -> None:
    assert indexed.returncode == 0, indexed.stderr

    as_json = cli.run("status", "--json")
    as_text = cli.run("status")

    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    (punks,) = report["collections"]
    assert (punks["slug"], punks["tokens"], punks["sales"], punks["embedded"]) == (
        "cryptopunks",
        len(TOKENS),
        6,
        len(TOKENS),
    )
    assert punks["latest_sale"].endswith("Z")
    assert report["index"]["vectors"] == len(TOKENS)
    assert report["last_sync"] is None
    jobs = {job["name"]: job for job in report["jobs"]}
    assert set(jobs) == {"sync", "digests", "index", "train", "housekeeping"}
    assert jobs["index"]["schedule"] == "every 15 min"
    # Nothing has scheduled or run a job in this data directory.
    assert jobs["index"]["last_run"] is None and jobs["index"]["next_run"] is None
    assert as_text.returncode == 0, as_text.stderr
    assert "cryptopunks (ethereum): 10 tokens, 10 embedded, 6 sales" in as_text.stdout
    assert "last run: never" in as_text.stdout
    assert "not scheduled yet" in as_text.stdout


def test_migrate_on_a_current_database_says_so(
    cli: Cli, ingested: subprocess.CompletedProcess[str]
) -> None:
    result = cli.run("migrate")

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("the database schema is current (revision ")
