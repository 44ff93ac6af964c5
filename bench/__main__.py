"""`python -m bench [--quick] [--cases 1,4,5] [--out PATH] [--keep]`: run the cases, print the table, write JSON.
`python -m bench --markdown`: run nothing, print bench/results.json as the block docs/benchmarks.md shows."""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from bench import burst, detection, intake, lock_page, locks, memory, overhead, parallel
from bench.conditions import conditions
from bench.report import CaseResult, read_json, render_results_markdown, render_text, table, write_json
from bench.rig import World, machine

DEFAULT_OUT = Path(__file__).resolve().parent / "results.json"
ALL_CASES = (1, 2, 3, 4, 5, 6, 7, 8)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="tfbot's benchmarks: every case against its baseline and target, as a table and in a JSON file. "
                    "Run from the repository root.")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: every case in well under a minute (CI)")
    parser.add_argument("--cases", default=",".join(map(str, ALL_CASES)),
                        help="comma-separated case numbers (7 needs 1 and 2, which it then runs)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"results file (default {DEFAULT_OUT})")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, configs)")
    parser.add_argument("--markdown", action="store_true",
                        help="run nothing: print the results file's table as Markdown with its commit, machine and "
                             "command, the block docs/benchmarks.md shows (--show picks another file)")
    parser.add_argument("--show", type=Path, metavar="RESULTS", help="run nothing: print the table of a results file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.markdown:
        meta, cases = read_json(args.show or DEFAULT_OUT)
        print(render_results_markdown(meta, cases))
        return 0
    if args.show:
        meta, cases = read_json(args.show)
        print(render_text(table(cases)))
        return 0
    wanted = {int(c) for c in args.cases.split(",") if c.strip()}
    if 7 in wanted:
        wanted |= {1, 2}
    root = Path(tempfile.mkdtemp(prefix="tfbot-bench-"))
    command = " ".join([".venv/bin/python -m bench", *(argv if argv is not None else sys.argv[1:])])
    meta: dict[str, Any] = {**machine(), "quick": args.quick, "command": command, "before": conditions()}
    print(f"tfbot bench{' --quick' if args.quick else ''}: {meta['cores']} cores, {meta['memory_gib']} GiB, "
          f"commit {meta['commit']}, {meta['date']}; work dir {root}", flush=True)
    world = World(root)
    results: list[CaseResult] = []
    side: dict[str, Any] = {}
    started = time.perf_counter()

    def attempt(number: int, key: str, title: str, func: Callable[[], Any]) -> None:
        if number not in wanted:
            return
        print(f"  case {title} ...", flush=True)
        begun = time.perf_counter()
        try:
            out = func()
        except Exception:  # noqa: BLE001 - one broken case must not hide the others' figures
            case = CaseResult(key, title, error=traceback.format_exc())
            print(case.error, file=sys.stderr, flush=True)
        else:
            case, extra = out if isinstance(out, tuple) else (out, None)
            if extra is not None:
                side[key] = extra
        case.seconds = time.perf_counter() - begun
        results.append(case)

    try:
        attempt(1, "intake", "1 webhook intake", lambda: intake.run(world, args.quick))
        attempt(2, "pr_overhead", "2 PR overhead vs raw", lambda: overhead.run(world, args.quick))
        attempt(3, "parallel", "3 parallel projects", lambda: parallel.run(world, args.quick))
        attempt(4, "detection", "4 project detection", lambda: detection.run(world, args.quick))
        attempt(5, "locks", "5 locks", lambda: locks.run(world, args.quick))
        attempt(6, "lock_page", "6 lock page", lambda: lock_page.run(world, args.quick))
        attempt(7, "memory", "7 memory", lambda: memory.run(side.get("intake"), side.get("pr_overhead")))
        attempt(8, "burst", "8 burst of PRs", lambda: burst.run(world, args.quick))
    finally:
        world.close()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    meta.update(seconds=round(time.perf_counter() - started, 1), after=conditions())
    cells = table(results)
    print()
    print(render_text(cells))
    print(f"\n{len(results)} case(s) in {meta['seconds']:.0f} s; load average before/after: "
          f"{meta['before']['loadavg_1m']} / {meta['after']['loadavg_1m']}; results in {args.out}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, meta, results)
    return 1 if any(case.error for case in results) else 0


if __name__ == "__main__":
    sys.exit(main())
