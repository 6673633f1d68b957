"""`zoo2vec index --schedule`: the indexing job on a cron expression, in the foreground, for machines without cron.

APScheduler's blocking scheduler fires the job; a run never overlaps the previous one (a firing that comes while a
run is still going is skipped, and missed firings are run once, not once each), and a run that fails is logged and
the schedule goes on. Ctrl-C (or SIGTERM from a service manager) stops it between runs.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from datetime import datetime

from zoo2vec.errors import ConfigError


def trigger(expression: str):
    """An APScheduler cron trigger from a crontab expression: five fields (minute hour day month weekday, as cron
    reads them) or six (a seconds field first), in the machine's time zone."""
    from apscheduler.triggers.cron import CronTrigger

    fields = expression.split()
    try:
        if len(fields) == 5:
            return CronTrigger.from_crontab(expression)
        if len(fields) == 6:
            second, minute, hour, day, month, weekday = fields
            return CronTrigger(second=second, minute=minute, hour=hour, day=day, month=month, day_of_week=weekday)
    except ValueError as exc:
        raise ConfigError(f"--schedule {expression!r} is not a cron expression: {exc}") from None
    raise ConfigError(f"--schedule {expression!r} has {len(fields)} fields; give five as cron does, e.g. "
                      "'0 2 * * *' for every night at 02:00 (or six, seconds first)")


def run_on_schedule(expression: str, job: Callable[[], object], *, max_runs: int | None = None,
                    say: Callable[[str], None] = print) -> int:
    """Run `job` at every time the cron `expression` names, until interrupted or after `max_runs` runs; returns how
    many runs were made. An exception in a run is reported through `say` and the schedule goes on."""
    from apscheduler.schedulers.blocking import BlockingScheduler

    cron = trigger(expression)
    scheduler = BlockingScheduler()
    made = 0

    def fire():
        nonlocal made
        say(f"{datetime.now().astimezone():%Y-%m-%d %H:%M:%S %Z}: indexing run starts")
        try:
            job()
        except Exception as exc:  # noqa: BLE001 - one bad night does not end the schedule
            say(f"the run failed: {type(exc).__name__}: {exc}")
        made += 1
        if max_runs is not None and made >= max_runs:
            scheduler.shutdown(wait=False)
        else:
            say(f"next run: {_next(scheduler)}")

    scheduler.add_job(fire, cron, id="index", max_instances=1, coalesce=True, misfire_grace_time=None)
    first = cron.get_next_fire_time(None, datetime.now(cron.timezone))
    say(f"scheduled {expression!r}: first run {first:%Y-%m-%d %H:%M:%S %Z} (Ctrl-C stops)")
    previous = signal.signal(signal.SIGTERM, lambda *_: scheduler.shutdown(wait=False))
    try:
        scheduler.start()  # blocks until shut down
    except KeyboardInterrupt:
        say("stopped")
    finally:
        signal.signal(signal.SIGTERM, previous)
        if scheduler.running:
            scheduler.shutdown(wait=False)
    return made


def _next(scheduler) -> str:
    job = scheduler.get_job("index")
    when = job.next_run_time if job is not None else None
    return f"{when:%Y-%m-%d %H:%M:%S %Z}" if when else "none"
