"""Scheduled jobs: what features declare, how each run is recorded, and the scheduler."""

from core.jobs.model import Job, Work
from core.jobs.runner import Alerter, JobRunner
from core.jobs.scheduler import JobScheduler, make_trigger

__all__ = ["Alerter", "Job", "JobRunner", "JobScheduler", "Work", "make_trigger"]
