"""Size limits of issue 27: no module over 400 lines and no function over 60, under include/, plugins/ and dags/.

A module's size is its number of lines; a function's (or method's, nested function's) is its `def` line
to its last line (ast: end_lineno - lineno + 1, decorators not counted). The failure lists every offender
as path:line, so the fix starts at the right place. Split by responsibility rather than squeezing lines.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECKED = ("include", "plugins", "dags")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def python_files(paths: Iterable[Path]) -> Iterator[Path]:
    """The .py files of the given files and directories (recursively), caches skipped, sorted."""
    for path in paths:
        if path.is_file() and path.suffix == ".py":
            yield path
        elif path.is_dir():
            yield from sorted(p for p in path.rglob("*.py") if "__pycache__" not in p.parts)


def offenders(paths: Iterable[Path], root: Path = ROOT) -> list[str]:
    """One line per module over MAX_MODULE_LINES and per function over MAX_FUNCTION_LINES."""
    found: list[str] = []
    for file in python_files(paths):
        text = file.read_text(encoding="utf-8")
        name = file.relative_to(root) if file.is_relative_to(root) else file
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES:
            found.append(f"{name}: module has {lines} lines (max {MAX_MODULE_LINES})")
        for node in ast.walk(ast.parse(text, filename=str(file))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno is not None:
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    found.append(f"{name}:{node.lineno}: function {node.name} has {length} lines "
                                 f"(max {MAX_FUNCTION_LINES})")
    return found


def test_no_module_over_400_lines_and_no_function_over_60() -> None:
    found = offenders(ROOT / d for d in CHECKED)
    assert not found, f"{len(found)} over the size limits (split by responsibility):\n" + "\n".join(found)


def test_the_check_reports_each_long_module_and_function(tmp_path: Path) -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES - 1))  # def line + body = the limit
    fits = f"def fits():\n{body}"
    too_long = f"class C:\n    async def too_long(self):\n    {body.replace(chr(10), chr(10) + '    ')}    pass\n"
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "ok.py").write_text(fits)
    (tmp_path / "pkg" / "long_method.py").write_text(too_long)
    (tmp_path / "pkg" / "big.py").write_text("x = 1\n" * (MAX_MODULE_LINES + 1))
    (tmp_path / "limit.py").write_text("x = 1\n" * MAX_MODULE_LINES)
    assert offenders([tmp_path], root=tmp_path) == [
        f"pkg/big.py: module has {MAX_MODULE_LINES + 1} lines (max {MAX_MODULE_LINES})",
        f"pkg/long_method.py:2: function too_long has {MAX_FUNCTION_LINES + 1} lines (max {MAX_FUNCTION_LINES})",
    ]
