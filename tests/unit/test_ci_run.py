""".ci/run runs both phases whatever the first one did, prints each phase's summary, and fails at the end
if either failed. `make` and `pg_isready` are replaced by stand-ins on PATH that record their calls."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _script(path: Path, body: str) -> None:
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _run_ci(tmp_path: Path, make_rc: dict[str, int], pg_answers: bool) -> tuple[int, str, list[str]]:
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir(parents=True)
    cases = "\n".join(f'  {target}) echo "{n} passed, {rc} failed in 1.0s"; exit {rc};;'
                      for n, (target, rc) in enumerate(make_rc.items(), start=3))
    _script(bin_dir / "make", f'echo "$*" >> {calls}\ncase "$1" in\n{cases}\nesac\n')
    _script(bin_dir / "pg_isready", f"exit {0 if pg_answers else 2}\n")
    _script(bin_dir / "chromium", "exit 0\n")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    proc = subprocess.run(["bash", str(ROOT / ".ci" / "run")], env=env, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    ran = calls.read_text().split("\n")[:-1] if calls.exists() else []
    return proc.returncode, proc.stdout, ran


def test_a_failed_first_phase_still_runs_the_second_and_fails_the_build(tmp_path: Path) -> None:
    rc, out, ran = _run_ci(tmp_path, {"test": 1, "test-pg15": 0}, pg_answers=True)
    assert ran == ["test", "test-pg15"]
    assert rc != 0
    summary = out.split("=== CI summary", 1)[1]
    assert "make test: FAILED (exit 1) | 3 passed, 1 failed" in summary
    assert "make test-pg15: passed | 4 passed, 0 failed" in summary


def test_a_failed_second_phase_fails_the_build(tmp_path: Path) -> None:
    rc, out, ran = _run_ci(tmp_path, {"test": 0, "test-pg15": 2}, pg_answers=True)
    assert ran == ["test", "test-pg15"] and rc != 0
    assert "make test-pg15: FAILED (exit 2)" in out.split("=== CI summary", 1)[1]


def test_both_green_passes_and_a_missing_server_is_named(tmp_path: Path) -> None:
    rc, out, ran = _run_ci(tmp_path, {"test": 0, "test-pg15": 0}, pg_answers=True)
    assert rc == 0 and ran == ["test", "test-pg15"]
    rc, out, ran = _run_ci(tmp_path / "no-server", {"test": 0, "test-pg15": 0}, pg_answers=False)
    assert rc == 0 and ran == ["test"]
    assert "make test-pg15: not run: no PostgreSQL answers at 127.0.0.1:5432" in out
