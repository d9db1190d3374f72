"""The pool and archive commands (the original app's seven): pool statistics and clean-up,
archive statistics and the four archive operations.

``commands(app)`` returns ``{name: function}``; the database plugin registers them. Reads go
through the service's pool; everything that writes runs on the single writer thread through
``service.write(fn)``, which gives up with ``unavailable`` when the writer has not started it
within ``database.write_timeout``. The four archive operations are jobs (``@runs_as_job``: one
at a time, off the pool that answers status commands, see ``host/jobs.py``); between chunks they
push ``archive_progress`` events (``{operation, done, total, percent}``) to the page and report
to ``app.jobs``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from restrike.host.commands import runs_as_job

from .running import service_of

if TYPE_CHECKING:
    from restrike.host.app import App

    from .service import DatabaseService
from restrike.plugins.plugin_database import archive

DaysOld = Annotated[int, Field(ge=0, le=archive.MAX_DAYS, description="age in days, >= 0")]


def progress_to(app: App) -> archive.Progress:
    """The progress of an archive operation to the page (``archive_progress`` pushes) and to
    the running job (``app.jobs.report``)."""

    def progress(operation: str, done: int, total: int) -> None:
        percent = round(done * 100.0 / total, 1) if total else 100.0
        app.push.emit(
            "archive_progress",
            {"operation": operation, "done": done, "total": total, "percent": percent},
            latest_only=True,
        )
        app.jobs.report(done, total)

    return progress


def commands(app: App) -> dict[str, Callable[..., Any]]:
    """The pool and archive commands, by name; ``app.push.emit`` carries the progress to the
    page."""

    def get_service() -> DatabaseService:
        return service_of(app)

    progress = progress_to(app)

    def get_database_pool_stats() -> dict:
        """Statistics of the read connection pool: ``available_connections``,
        ``max_connections``, ``pool_utilization`` (0-100, in use / max), ``in_use``, ``idle``,
        ``created``, ``recycled``, ``health_failures``, ``wait_count``, ``timeouts``,
        ``wait_ms_p99``, ``requests``, ``last_cleanup`` (ISO time or null), and ``checkpoint``:
        the SQLite WAL checkpointer's ``interval_s``, ``runs``, ``frames_checkpointed``,
        ``busy``, ``errors``, ``last_at``, ``pending_frames``, ``wal_bytes``,
        ``wal_warn_bytes``, ``wal_over_bound`` (``checkpoint.Checkpointer.stats``; null on
        PostgreSQL)."""
        service = get_service()
        return {**service.pool.get_stats(), "checkpoint": service.checkpoint_stats()}

    def cleanup_database_pool() -> None:
        """Close idle read connections now (those idle longer than the pool's max idle time
        beyond its minimum size, and those past their max lifetime) instead of at the next
        60-second round."""
        get_service().pool.cleanup()

    @runs_as_job
    def archive_old_events(days_old: DaysOld) -> int:
        """Move events older than ``days_old`` days (by ``created_at``), with all their details,
        to the archive tables, in one transaction. Returns the number of events moved.
        Pushes ``archive_progress``. A job: ``conflict`` while another long operation runs,
        ``unavailable`` when the writer does not start it within ``database.write_timeout``."""
        days = archive.validate_days_old(days_old)
        return get_service().write(
            lambda conn: archive.archive_old_events(conn, days, progress=progress)
        )

    def get_archive_statistics() -> dict:
        """Archive statistics: ``archived_events``, ``archived_details``, ``oldest_archived`` and
        ``newest_archived`` (ISO times or null), ``archive_size_bytes`` (pages the archive tables
        and their indexes occupy) and ``archive_size_method`` (``dbstat`` or ``estimate``)."""
        with get_service().pool.connection() as conn:
            return archive.get_archive_statistics(conn)

    @runs_as_job
    def restore_from_archive(start_date: str, end_date: str) -> int:
        """Move archived events created between ``start_date`` and ``end_date`` (ISO dates or
        date-times, both inclusive; a date-only end covers that whole day) and their details back
        to the main tables, in one transaction. Returns the number of events restored. Pushes
        ``archive_progress``. Restoring the same range again restores nothing. A job."""
        start, end = archive.parse_date_range(start_date, end_date)
        return get_service().write(
            lambda conn: archive.restore_from_archive(conn, start, end, progress=progress)
        )

    @runs_as_job
    def cleanup_old_archive_data(days_old: DaysOld) -> int:
        """Permanently delete archived events older than ``days_old`` days and their archived
        details, in one transaction. Returns the number of archived events deleted. Pushes
        ``archive_progress``. A job."""
        days = archive.validate_days_old(days_old)
        return get_service().write(
            lambda conn: archive.cleanup_old_archive_data(conn, days, progress=progress)
        )

    @runs_as_job
    def optimize_archive_tables() -> None:
        """ANALYZE and REINDEX the archive tables and give free pages back to the file system
        (VACUUM, or incremental vacuum when enabled). Can take a while on a large database;
        ingest waits behind it on the writer. A job."""
        get_service().write(archive.optimize_archive_tables)

    return {
        "get_database_pool_stats": get_database_pool_stats,
        "cleanup_database_pool": cleanup_database_pool,
        "archive_old_events": archive_old_events,
        "get_archive_statistics": get_archive_statistics,
        "restore_from_archive": restore_from_archive,
        "cleanup_old_archive_data": cleanup_old_archive_data,
        "optimize_archive_tables": optimize_archive_tables,
    }

