"""The one error hierarchy of dbsplit.

Every class derives from DbsplitError; a task that raises one fails at once, without a retry (the
Airflow task callables turn it into AirflowFailException): a retry would meet the same problem. Each
class names one kind of failure, and its message names the phase and the fix.
"""

from __future__ import annotations


class DbsplitError(Exception):
    """Base class of every error dbsplit raises on purpose."""


class PlanError(DbsplitError):
    """A migration plan is invalid; carries every problem found, each with its location and fix."""

    def __init__(self, problems: list["PlanProblem"]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class PlanProblem:
    """One problem in a plan file: where it is, what is wrong and how to fix it."""

    def __init__(self, file: str, line: int | None, field: str, message: str, fix: str) -> None:
        self.file, self.line, self.field, self.message, self.fix = file, line, field, message, fix

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field}: {self.message}. Fix: {self.fix}"


class ConnectionConfigError(DbsplitError):
    """A connection id of the plan cannot be resolved to a database."""


class SourceSchemaError(DbsplitError):
    """The source database does not hold what the plan expects."""


class DataCheckFailed(DbsplitError):
    """A validation of migrated data failed; the message summarises every failed check."""


CheckFailed = DataCheckFailed   # the short name the issue uses; DataCheckFailed stays what tests and callers catch


class PreflightFailed(DbsplitError):
    """The orchestrator's preflight found a problem before anything was changed (connections, versions,
    source tables, disk space, unmanaged target tables); the message names every failed check."""


class SuiteFileMissing(DbsplitError):
    """A table's `expectations` file is not found above the plan file; the message names the path and the fix."""


class RunRolledBack(DbsplitError):
    """An orchestrator run failed and was rolled back; the message names the failed tasks, their reasons,
    and what the rollback undid. Not a failed check: the rollback itself succeeded."""


class RejectLimitExceeded(DbsplitError):
    """More rows were rejected than allowed; the chunk's loaded rows are rolled back to its savepoint.
    rejects: the move.transform.Reject records found so far."""

    def __init__(self, message: str, rejects: list) -> None:
        super().__init__(message)
        self.rejects = rejects


class SqlFragmentError(DbsplitError):
    """An SQL fragment of a plan (filter, default, type) is not exactly one expression or type name."""


class LoadRefused(DbsplitError):
    """The target refuses a source row for good (a constraint or a value its type cannot hold): a retry
    repeats it, so the task fails at once; the message names the row's problem and the fix."""
