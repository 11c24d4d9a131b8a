"""The layer contract (.importlinter) is enforced: a copy of the package in which a pg/ module imports
from airflow/ (or Airflow itself) fails `lint-imports`, naming the import; the unchanged copy passes.

Removing or loosening either contract in .importlinter makes one of these tests fail."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / ".importlinter"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(include: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(include)}
    return subprocess.run([str(LINT_IMPORTS), "--config", str(CONFIG), "--no-cache"], cwd=include,
                          env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    include = tmp_path_factory.mktemp("include")
    shutil.copytree(ROOT / "include" / "dbsplit", include / "dbsplit",
                    ignore=shutil.ignore_patterns("__pycache__", "templates"))
    return include


def test_the_package_keeps_its_contracts(package_copy: Path) -> None:
    result = _lint(package_copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout


@pytest.mark.parametrize("line, expected", [
    # a lazy (function-level) import counts as much as a module-level one
    ("def f():\n    from dbsplit.airflow import specs\n    return specs\n",
     "dbsplit.pg is not allowed to import dbsplit.airflow"),
    ("from dbsplit.engine import resolve\n", "dbsplit.pg is not allowed to import dbsplit.engine"),
    ("def f():\n    from airflow.sdk import BaseHook\n    return BaseHook\n",
     "dbsplit.pg is not allowed to import airflow"),
])
def test_an_import_up_the_layers_fails(package_copy: Path, tmp_path: Path, line: str, expected: str) -> None:
    include = tmp_path / "include"
    shutil.copytree(package_copy, include)
    (include / "dbsplit" / "pg" / "upward.py").write_text(f'"""Imports the wrong way."""\n\n{line}')
    result = _lint(include)
    assert result.returncode != 0, result.stdout
    assert expected in result.stdout, result.stdout
    assert "dbsplit.pg.upward ->" in result.stdout, result.stdout
