"""Jobs: registered as configured, every run recorded, failures logged once, no overlaps.

Nothing here sleeps on the wall clock: registration is checked on the scheduler itself, and
runs are made by calling the runner with a fake clock.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from core.config import JobsSettings, JobTrigger, crontab_fields
from core.errors import FetchError, JobSkipped, StorageError
from core.jobs import Alerter, Job, JobRunner, JobScheduler, make_trigger
from core.jobs.housekeeping import housekeeping_job
from core.posting import ChatTarget, PostRouter
from core.storage import Storage
from core.storage.files import STALE_TEMP_S
from tests.fakes import FakeClock, RecordingPoster

START = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture
def storage(database_url: str) -> Iterator[Storage]:
    storage = Storage.open(database_url)
    yield storage
    storage.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


def job(name: str, work: object, trigger: JobTrigger | None = None) -> Job:
    return Job(name, f"the {name} job", trigger or JobTrigger(every_minutes=5), work)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("weekdays", "names"),
    [
        ("*", "*"),
        ("1-5", "mon,tue,wed,thu,fri"),
        ("0", "sun"),
        ("7", "sun"),
        ("5-7", "sun,fri,sat"),
        ("*/2", "sun,tue,thu,sat"),
        ("1/2", "mon,wed,fri"),
        ("sat,sun", "sun,sat"),
    ],
)
def test_crontab_weekdays_count_from_sunday(weekdays: str, names: str) -> None:
    assert crontab_fields(f"0 0 * * {weekdays}")["day_of_week"] == names


def test_triggers_follow_the_config() -> None:
    interval = make_trigger(JobTrigger(every_minutes=15, jitter_s=30))
    cron = make_trigger(JobTrigger(cron="17 4 * * 1-5", jitter_s=0))

    assert isinstance(interval, IntervalTrigger)
    assert interval.interval.total_seconds() == 900 and interval.jitter == 30
    assert isinstance(cron, CronTrigger) and cron.jitter is None
    fields = {field.name: str(field) for field in cron.fields}
    assert (fields["minute"], fields["hour"]) == ("17", "4")
    # Crontab's 1-5 is Monday to Friday (APScheduler 3 alone would read Tuesday to Saturday):
    # the next run after Friday 05:00 is Monday 04:17 UTC.
    friday = datetime(2026, 11, 27, 5, 0, tzinfo=UTC)
    assert cron.get_next_fire_time(None, friday) == datetime(2026, 11, 30, 4, 17, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "exactly one of every_minutes and cron"),
        ({"every_minutes": 5, "cron": "* * * * *"}, "exactly one"),
        ({"cron": "every day"}, "needs five fields"),
        ({"cron": "61 * * * *"}, "not a valid crontab line"),
        ({"every_minutes": 0}, "greater than 0"),
    ],
)
def test_bad_triggers_are_refused(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        JobTrigger.model_validate(raw)


def test_alert_targets_are_checked() -> None:
    assert JobsSettings(alerts=("telegram:-100123", "discord:42", "console:ops")).alerts
    with pytest.raises(ValueError, match="is not a chat target"):
        JobsSettings(alerts=("slack:#ops",))


async def test_the_scheduler_registers_enabled_jobs_as_configured(
    storage: Storage, clock: FakeClock
) -> None:
    async def work() -> str:
        return "done"

    jobs = [
        job("index", work, JobTrigger(every_minutes=15, jitter_s=60)),
        job("housekeeping", work, JobTrigger(cron="17 4 * * *", jitter_s=300)),
        job("digest", work, JobTrigger(every_minutes=60, enabled=False)),
    ]
    scheduler = JobScheduler(
        jobs, JobRunner(storage.jobs, clock), storage.jobs, misfire_grace_s=600, clock=clock
    )

    async with scheduler:
        registered = {j.id: j for j in scheduler.scheduler.get_jobs()}
        plans = storage.jobs.plans()

    assert set(registered) == {"index", "housekeeping"}
    for entry in registered.values():
        assert entry.max_instances == 1
        assert entry.coalesce is True
        assert entry.misfire_grace_time == 600
    assert registered["index"].trigger.jitter == 60
    assert isinstance(registered["housekeeping"].trigger, CronTrigger)
    assert set(plans) == {"index", "housekeeping"}
    assert plans["index"].trigger == "every 15 min"
    assert plans["index"].updated_at == START
    assert plans["index"].next_run_at is not None
    assert not scheduler.scheduler.running


async def test_a_run_is_recorded(storage: Storage, clock: FakeClock) -> None:
    async def work() -> str:
        clock.advance(seconds=3)
        return "embedded 4 images"

    run = await JobRunner(storage.jobs, clock).run(job("index", work))

    assert (run.status, run.summary, run.error) == ("ok", "embedded 4 images", None)
    (stored,) = storage.jobs.runs("index")
    assert stored == run
    assert stored.finished_at is not None
    assert (stored.finished_at - stored.started_at).total_seconds() == 3


async def test_a_failing_job_is_logged_once_with_an_id_alerted_and_runs_again(
    storage: Storage, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    poster = RecordingPoster("console")
    alerter = Alerter(PostRouter([poster]), [ChatTarget.parse("console:ops")])
    runner = JobRunner(storage.jobs, clock, alerter)
    outcomes = iter([FetchError("The marketplace answered HTTP 502."), None])

    async def work() -> str:
        if (error := next(outcomes)) is not None:
            raise error
        return "fine now"

    with caplog.at_level(logging.INFO, logger="core.jobs"):
        failed = await runner.run(job("sync", work))
        clock.advance(minutes=5)
        recovered = await runner.run(job("sync", work))

    assert (failed.status, failed.error) == ("failed", "The marketplace answered HTTP 502.")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and failed.id in errors[0].getMessage()
    ((chat, alert),) = poster.sent
    assert chat == "ops" and failed.id in alert.text and "'sync' failed" in alert.text
    assert "HTTP 502" in alert.text
    assert recovered.status == "ok"
    assert [r.status for r in storage.jobs.runs("sync")] == ["ok", "failed"]
    assert storage.jobs.last_runs()["sync"].id == recovered.id


async def test_an_unexpected_failure_keeps_its_internals_in_the_log(
    storage: Storage, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    poster = RecordingPoster("console")
    runner = JobRunner(
        storage.jobs, clock, Alerter(PostRouter([poster]), [ChatTarget.parse("console:ops")])
    )

    async def work() -> str:
        raise KeyError("internal_field_name")

    run = await runner.run(job("digest", work))

    assert run.error == "it failed unexpectedly (KeyError); the log has the details"
    assert "internal_field_name" not in poster.sent[0][1].text
    assert "internal_field_name" in caplog.text  # the traceback, under the run's id
    assert run.id in caplog.text


async def test_an_alert_that_cannot_be_posted_does_not_fail_twice(
    storage: Storage, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    class Down:
        platform = "telegram"

        async def post(self, chat: str, post: object) -> None:
            raise ConnectionResetError("the chat platform is down")

    runner = JobRunner(
        storage.jobs, clock, Alerter(PostRouter([Down()]), [ChatTarget.parse("telegram:-1")])
    )

    async def work() -> str:
        raise FetchError("The marketplace answered HTTP 502.")

    run = await runner.run(job("sync", work))

    assert run.status == "failed"
    assert storage.jobs.runs("sync")[0].status == "failed"  # recorded before alerting
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1
    assert "could not post the failure of sync" in caplog.text


async def test_a_job_that_cannot_work_now_is_skipped(storage: Storage, clock: FakeClock) -> None:
    async def work() -> str:
        raise JobSkipped("another index run is in progress")

    run = await JobRunner(storage.jobs, clock).run(job("index", work))

    assert (run.status, run.summary) == ("skipped", "another index run is in progress")


async def test_runs_of_one_job_never_overlap(storage: Storage, clock: FakeClock) -> None:
    release = asyncio.Event()
    started = asyncio.Event()

    async def slow() -> str:
        started.set()
        await release.wait()
        return "finally"

    runner = JobRunner(storage.jobs, clock)
    first = asyncio.create_task(runner.run(job("index", slow)))
    await started.wait()
    second = await runner.run(job("index", slow))
    release.set()
    done = await first

    assert (second.status, second.summary) == ("skipped", "still running")
    assert done.status == "ok"
    assert sorted(r.status for r in storage.jobs.runs("index")) == ["ok", "skipped"]


async def test_a_cancelled_run_is_recorded_as_failed(storage: Storage, clock: FakeClock) -> None:
    async def forever() -> str:
        await asyncio.Event().wait()
        return "never"

    task = asyncio.create_task(JobRunner(storage.jobs, clock).run(job("index", forever)))
    for _ in range(100):
        if storage.jobs.runs("index"):
            break
        await asyncio.sleep(0)  # let the run start; no wall-clock wait
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    (run,) = storage.jobs.runs("index")
    assert (run.status, run.error) == ("failed", "cancelled")


async def test_a_broken_job_log_does_not_fail_the_job(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        def save(self, run: object) -> None:
            raise StorageError("The database failed (OperationalError); try again in a moment.")

    async def work() -> str:
        return "done anyway"

    run = await JobRunner(Broken(), clock).run(job("index", work))  # type: ignore[arg-type]

    assert run.status == "ok"
    assert "could not record a job run" in caplog.text


async def test_housekeeping_removes_only_old_temporary_files(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "images" / "ab").mkdir(parents=True)
    (data / "index").mkdir()
    old = data / "images" / "ab" / ".x.png.1a2b.part"
    young = data / "index" / ".m.faiss.3c4d.part"
    kept = data / "images" / "ab" / "abcd.png"
    for path in (old, young, kept):
        path.write_bytes(b"x")
    stale = time.time() - STALE_TEMP_S - 60
    os.utime(old, (stale, stale))

    summary = await housekeeping_job(data, JobTrigger(cron="17 4 * * *")).work()

    assert summary == "removed 1 leftover temporary file(s)"
    assert not old.exists() and young.exists() and kept.exists()


async def test_run_now_runs_a_registered_job(storage: Storage, clock: FakeClock) -> None:
    calls: list[str] = []

    async def work() -> str:
        calls.append("ran")
        return "ok"

    scheduler = JobScheduler(
        [job("index", work)],
        JobRunner(storage.jobs, clock),
        storage.jobs,
        misfire_grace_s=60,
        clock=clock,
        scheduler=AsyncIOScheduler(timezone=UTC),
    )
    async with scheduler:
        await scheduler.run_now("index")
        with pytest.raises(KeyError):
            await scheduler.run_now("nope")

    assert calls == ["ran"]
    assert storage.jobs.last_runs()["index"].status == "ok"


def test_a_cron_line_restricting_both_days_is_refused() -> None:
    # Crontab runs when either the day of month or the weekday matches; APScheduler only
    # when both do. Rather than run on other days than the operator meant, refuse it.
    with pytest.raises(ValueError, match="restricts both day of month and weekday"):
        JobTrigger(cron="0 4 1 * 1")


async def test_a_run_missed_while_the_bot_was_down_runs_at_start(storage: Storage) -> None:
    ran = asyncio.Event()

    async def work() -> str:
        ran.set()
        return "caught up"

    trigger = JobTrigger(cron="17 4 * * *", jitter_s=0)
    now = datetime.now(UTC)
    missed = now - timedelta(minutes=5)
    storage.jobs.planned("housekeeping", trigger.describe(), missed, missed)
    scheduler = JobScheduler(
        [job("housekeeping", work, trigger)],
        JobRunner(storage.jobs),
        storage.jobs,
        misfire_grace_s=600,
    )

    async with scheduler:
        # Registered at the missed time, APScheduler runs it on its first wake-up (its daily
        # time is hours away); wait for that event, not for the clock.
        await asyncio.wait_for(ran.wait(), timeout=30)
        await asyncio.sleep(0)

    assert storage.jobs.last_runs()["housekeeping"].summary == "caught up"
    # ...and the next run is planned on the schedule again.
    assert storage.jobs.plans()["housekeeping"].next_run_at > now  # type: ignore[operator]


async def test_a_plan_for_another_schedule_is_not_a_missed_run(storage: Storage) -> None:
    async def work() -> str:
        return "ran"

    stale = datetime.now(UTC) - timedelta(minutes=5)
    storage.jobs.planned("index", "every 60 min", stale, stale)
    scheduler = JobScheduler(
        [job("index", work, JobTrigger(every_minutes=15, jitter_s=0))],
        JobRunner(storage.jobs),
        storage.jobs,
        misfire_grace_s=600,
    )

    async with scheduler:
        planned = scheduler.scheduler.get_job("index").next_run_time

    assert planned > datetime.now(UTC)


async def test_stopping_cancels_a_run_in_progress_and_waits_for_it(
    storage: Storage, clock: FakeClock
) -> None:
    started = asyncio.Event()

    async def forever() -> str:
        started.set()
        await asyncio.Event().wait()
        return "never"

    scheduler = JobScheduler(
        [job("index", forever)], JobRunner(storage.jobs, clock), storage.jobs,
        misfire_grace_s=60, clock=clock,
    )  # fmt: skip
    async with scheduler:
        running = asyncio.create_task(scheduler.run_now("index"))
        await started.wait()
    # Leaving the context waited for the run to end, and the run says why it ended.

    assert running.done()
    (run,) = storage.jobs.runs("index")
    assert (run.status, run.error) == ("failed", "cancelled")
