"""Progress of a local run, read from the runner's log file as it grows: one line per service and table.

The local runner (dbsplit.local.airflow_local) writes Airflow's output to a log file; this module follows
that file and recognises the few lines dbsplit itself logs (a DAG starting and ending, a table's new
load and its chunk count, each chunk loaded, the table validated). On a terminal each table is a rich
progress bar (rows done, rows/s, ETA); otherwise each table prints one plain line when it is done, and
one more at most every PLAIN_EVERY_S seconds while it loads.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

PLAIN_EVERY_S = 30.0
_POLL_S = 0.25
_DAG_START = re.compile(r"==> dbsplit(?: pump)?: dag\.test\(([^)]+)\)")
_DAG_END = re.compile(r"==> dbsplit(?: pump)?: (\S+): (\w+) in ([\d.]+) s")
_NEW_LOAD = re.compile(r"\] (\S+?)\.(\S+): new load \d+ in (\d+) chunk")
_RESUMED = re.compile(r"\] (\S+?)\.(\S+): resuming load \d+: (\d+) of (\d+) chunks")
_LOADED = re.compile(r"\] loaded (.+) (\d+)/(\d+): (\d+) rows")
_VALIDATED = re.compile(r"\] (\S+?)\.(\S+): (\d+) source rows, ")


@dataclass
class TableProgress:
    """One table of the running service."""

    service: str
    table: str
    chunks: int
    done: int = 0
    rows: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    loaded_at: float | None = None      # when the last chunk was loaded
    last_said: float = field(default_factory=time.monotonic)

    @property
    def rate(self) -> float:
        """Rows per second from the start of the table's load to its last chunk loaded."""
        elapsed = (self.loaded_at or time.monotonic()) - self.started
        return self.rows / elapsed if elapsed > 0 and self.rows else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds left, from the time per chunk so far (None before the first chunk)."""
        if self.finished or not self.done:
            return 0.0 if self.finished else None
        return (time.monotonic() - self.started) / self.done * (self.chunks - self.done)

    def line(self) -> str:
        """`service  table  rows, rows/s, ETA or done`."""
        state = "done" if self.finished else f"chunk {self.done}/{self.chunks}, ETA {_duration(self.eta_s)}"
        return f"  {self.service:<14} {self.table:<32} {self.rows:>12,} rows {self.rate:>10,.0f} rows/s  {state}"


def service_of(dag_id: str) -> str:
    """The service of a migrate DAG id (other DAG ids as they are)."""
    return dag_id.removeprefix("dbsplit_migrate_")


class PlainView:
    """Plain lines: a table's line when it is done (and every PLAIN_EVERY_S while it loads), a service's
    line when its DAG run ends."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def table(self, t: TableProgress) -> None:
        now = time.monotonic()
        if t.finished or now - t.last_said >= PLAIN_EVERY_S:
            t.last_said = now
            self._say(t.line())

    def service_end(self, dag_id: str, state: str, seconds: str) -> None:
        self._say(f"{service_of(dag_id)}: {state} in {seconds} s")

    def close(self) -> None:
        return None

    def _say(self, text: str) -> None:
        print(text, file=self.out, flush=True)


class RichView:
    """A rich progress bar per table (chunks done of all, rows, rows/s, ETA) on a terminal."""

    def __init__(self, out: TextIO) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn

        self.console = Console(file=out)
        self.bars = Progress(TextColumn("{task.description}"), BarColumn(bar_width=16),
                             TextColumn("{task.fields[rows]:>10,} rows {task.fields[rate]:>8,.0f} rows/s"),
                             TextColumn("ETA {task.fields[eta]}"), console=self.console, transient=False)
        self.tasks: dict[tuple[str, str], Any] = {}
        self.bars.start()

    def table(self, t: TableProgress) -> None:
        key = (t.service, t.table)
        if key not in self.tasks:
            self.tasks[key] = self.bars.add_task(f"{t.service} {t.table}", total=t.chunks, rows=0, rate=0.0, eta="-")
        eta = "done" if t.finished else _duration(t.eta_s)
        self.bars.update(self.tasks[key], completed=t.chunks if t.finished else t.done, rows=t.rows, rate=t.rate,
                         eta=eta)

    def service_end(self, dag_id: str, state: str, seconds: str) -> None:
        self.bars.console.print(f"{service_of(dag_id)}: {state} in {seconds} s")

    def close(self) -> None:
        self.bars.stop()


class Tracker:
    """Reads log lines and tells a view how the tables of the running service progress."""

    def __init__(self, view: PlainView | RichView) -> None:
        self.view = view
        self.service = ""
        self.tables: dict[str, TableProgress] = {}

    def feed(self, line: str) -> None:
        """Take one log line."""
        if m := _DAG_START.search(line):
            self.service, self.tables = service_of(m.group(1)), {}
        elif m := _DAG_END.search(line):
            self.view.service_end(m.group(1), m.group(2), m.group(3))
        elif (m := _NEW_LOAD.search(line)) or (m := _RESUMED.search(line)):
            chunks, done = (int(m.group(3)), 0) if m.re is _NEW_LOAD else (int(m.group(4)), int(m.group(3)))
            self.tables[m.group(2)] = new = TableProgress(self.service, m.group(2), chunks, done)
            self.view.table(new)
        elif (m := _LOADED.search(line)) and (t := self.tables.get(m.group(1))):
            t.done, t.rows, t.loaded_at = t.done + 1, t.rows + int(m.group(4)), time.monotonic()
            self.view.table(t)
        elif (m := _VALIDATED.search(line)) and (t := self.tables.get(m.group(2))) and not t.finished:
            t.finished = time.monotonic()
            t.rows = max(t.rows, int(m.group(3)))
            self.view.table(t)


class Follower:
    """Follows a growing log file in a thread and feeds its lines to a Tracker; a context manager."""

    def __init__(self, path: Path, out: TextIO | None = None, rich: bool | None = None) -> None:
        out = out or sys.stdout
        use_rich = out.isatty() if rich is None else rich
        self.tracker = Tracker(RichView(out) if use_rich else PlainView(out))
        self.path = path
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dbsplit-progress", daemon=True)

    def __enter__(self) -> Follower:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.tracker.view.close()

    def _run(self) -> None:
        while not self.path.exists() and not self._stop.wait(_POLL_S):
            pass
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8", errors="replace") as log:   # a new file per run
            partial = ""
            while True:
                chunk = log.read()
                if chunk:
                    *lines, partial = (partial + chunk).split("\n")
                    for line in lines:
                        self.tracker.feed(line)
                elif self._stop.is_set():
                    return
                else:
                    time.sleep(_POLL_S)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
