"""What a failed task leaves behind under dag.test(): its exception, or the last lines of its log.

Used inside the child and the pump, which install a `TeeStdout` as sys.stdout before importing airflow
and a `TaskErrors` once airflow is configured.
"""

from __future__ import annotations

import os
import re
import sys
import traceback
from collections import deque
from pathlib import Path
from typing import Any, TextIO

# How many log lines of a failed task to keep when its exception object is not available.
LOG_TAIL_LINES = 20
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_LIBRARY_DIRS = tuple({os.path.dirname(os.__file__), *(p for p in sys.path if p.endswith("-packages"))})


class TeeStdout:
    """Stand-in for sys.stdout that forwards everything and keeps the lines of the running task.

    Installed before airflow is imported, so Airflow's log handlers (which bind sys.stdout when
    logging is configured) write through it; task code print()s go through it too.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lines: deque[str] | None = None
        self._partial = ""

    def start(self) -> None:
        self._lines, self._partial = deque(maxlen=LOG_TAIL_LINES * 5), ""

    def stop(self) -> list[str]:
        lines = list(self._lines or ())
        if self._partial:
            lines.append(self._partial)
        self._lines, self._partial = None, ""
        return lines

    def write(self, s: str) -> int:
        n = self._stream.write(s)
        if self._lines is not None and s:
            *full, self._partial = (self._partial + s).split("\n")
            self._lines.extend(full)
        return n if n is not None else len(s)

    def __getattr__(self, name: str) -> Any:  # flush, fileno, isatty, encoding, buffer...
        return getattr(self._stream, name)


def describe_exception(err: BaseException) -> str:
    """"ExcType: message (at file:line in function)", the place being the innermost frame of
    project code (DAG file, dbsplit) rather than of the library that raised, when there is one."""
    text = "".join(traceback.format_exception_only(type(err), err)).strip()
    frames = traceback.extract_tb(err.__traceback__)
    ours = [f for f in frames if not f.filename.startswith(_LIBRARY_DIRS) and not f.filename.startswith("<")]
    where = (ours or frames)[-1:]
    if where:
        place = f"at {Path(where[0].filename).name}:{where[0].lineno} in {where[0].name}"
        text += f"\n({place})" if "\n" in text else f" ({place})"
    return text


def log_tail(lines: list[str]) -> str:
    """The last LOG_TAIL_LINES non-blank lines, without colours and CI group markers."""
    clean = [_ANSI.sub("", ln).rstrip() for ln in lines]
    clean = [ln for ln in clean if ln.strip() and "::group::" not in ln and "::endgroup::" not in ln]
    return "\n".join(clean[-LOG_TAIL_LINES:])


class TaskErrors:
    """Captures, per task try, the exception that dag.test() would otherwise throw away.

    dag.test() runs each task through supervisor.run_task_in_process(), whose TaskRunResult
    carries the exception (`error`), then drops that result (airflow/sdk/definitions/dag.py,
    _run_task). Nothing reaches $AIRFLOW_HOME/logs in this mode, and the database keeps only the
    state. So we wrap run_task_in_process (looked up at call time in _run_task) and remember the
    exception, or the task's last log lines when there is none (e.g. a templating error).
    """

    def __init__(self, tee: TeeStdout) -> None:
        self.tee = tee
        self.by_ti: dict[tuple[str, str, str, int], str] = {}

    def install(self) -> None:
        from airflow.sdk.execution_time import supervisor

        original = supervisor.run_task_in_process

        def run_task_in_process(ti: Any, task: Any, *args: Any, **kwargs: Any) -> Any:
            key = (ti.dag_id, ti.run_id, ti.task_id, ti.map_index)
            self.tee.start()
            try:
                result = original(ti, task, *args, **kwargs)
            except BaseException as err:
                self.by_ti[key] = describe_exception(err)
                self.tee.stop()
                raise
            self._record(key, result, self.tee.stop())
            return result

        supervisor.run_task_in_process = run_task_in_process

    def _record(self, key: tuple[str, str, str, int], result: Any, lines: list[str]) -> None:
        if result.error is not None:
            self.by_ti[key] = describe_exception(result.error)
        elif str(getattr(result.state, "value", result.state)) in ("failed", "up_for_retry"):
            self.by_ti[key] = log_tail(lines) or "task failed without an exception or log"
        else:
            self.by_ti.pop(key, None)  # a later successful try clears an earlier failure
