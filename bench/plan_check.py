"""Time and peak memory of `dbsplit plan check` on a large plan and on a YAML alias bomb.

Usage: PYTHONPATH=include python bench/plan_check.py [big|bomb] [target megabytes, default 10]
Prints wall and CPU seconds, peak RSS (MB) and the exit code. Nothing is asserted: figures go in reports.
"""

from __future__ import annotations

import contextlib
import io
import resource
import sys
import tempfile
import time
from pathlib import Path


def big_plan(megabytes: float) -> str:
    """A valid plan of about `megabytes` MB: many services, each with many transformed tables."""
    head = "version: 1\nname: big\nsource: {conn_id: big_src}\ndefaults: {mask_salt: {variable: salt}}\nservices:\n"
    parts, size, n = [head], len(head), 0
    while size < megabytes * 1_000_000:
        lines = [f"  svc_{n}:\n", f"    target: {{conn_id: db_{n}}}\n", "    tables:\n"]
        for t in range(50):
            lines += [f"      - source: table_{n}_{t}\n", "        transforms:\n",
                      "          email: {mask: hash}\n", "          note: {rename: remark}\n", "          legacy: drop\n",
                      "        add_columns: {origin: {type: text, default: \"'monolith'\"}}\n"]
        block = "".join(lines)
        parts.append(block)
        size, n = size + len(block), n + 1
    return "".join(parts)


def bomb(levels: int = 9, width: int = 9) -> str:
    """The "billion laughs": each level is a list of `width` aliases of the level before."""
    lines = ["version: 1", "name: bomb", "source: {conn_id: src}", "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    lines.append(f"services: {{s: {{target: {{conn_id: t}}, tables: [*a{levels - 1}]}}}}")
    return "\n".join(lines) + "\n"


def main(kind: str, megabytes: float) -> None:
    from dbsplit.local.cli import main as cli

    text = big_plan(megabytes) if kind == "big" else bomb()
    path = Path(tempfile.mkdtemp()) / f"{kind}.yaml"
    path.write_text(text, encoding="utf-8")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    wall, cpu = time.perf_counter(), time.process_time()
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = cli(["plan", "check", str(path)])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{kind}: {len(text) / 1e6:.1f} MB, exit {code}, {wall:.2f} s wall, {cpu:.2f} s CPU, peak RSS {peak:.0f} MB "
          f"({before:.0f} MB before the check)")
    print(out.getvalue()[:300], end="")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "big", float(sys.argv[2]) if len(sys.argv) > 2 else 10)
