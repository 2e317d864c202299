"""Cold start of ``headfit explain``: the whole CLI process, median of several runs, against the floor
of ``python -c pass``. Target: under 0.3 s. Run: ``python bench/explain_coldstart.py [RUNS]``.

Each run is a fresh process. Bytecode caching is on (as after ``pip install``, which compiles it): one
untimed warm-up run per case writes the ``.pyc`` files even where PYTHONDONTWRITEBYTECODE is set.
The cases take turns (floor, text, JSON, floor, ...) so that a change of load on a shared machine
weighs on all of them alike; besides the wall time, the CPU time (user + sys) of each process is
reported, which load hardly changes.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time

SEED = "shape '[2, -1, 91, 168, 96]' is invalid for input of size 64512"
TARGET_S = 0.3
MIN_RUNS = 7  # fewer runs make the median a coin toss on a loaded machine
FLOOR = "python -c pass (floor)"


def timed_run(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + sys) of one process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(cases: dict[str, list[str]], runs: int) -> dict[str, tuple[float, float]]:
    """Median wall and CPU seconds per case, the cases taking turns; run 0 only warms the bytecode cache."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    for i in range(runs + 1):
        for name, argv in cases.items():
            sample = timed_run(argv, env)
            if i:
                samples[name].append(sample)
    return {
        name: (statistics.median(w for w, _ in got), statistics.median(c for _, c in got))
        for name, got in samples.items()
    }


def main(runs: int = 9) -> int:
    if runs < MIN_RUNS:
        raise SystemExit(f"use at least {MIN_RUNS} runs, not {runs}")
    python = sys.executable
    cases = {
        FLOOR: [python, "-c", "pass"],
        "headfit explain SEED": [python, "-m", "headfit", "explain", SEED],
        "headfit explain --json SEED": [python, "-m", "headfit", "explain", "--json", SEED],
    }
    results = measure(cases, runs)
    floor_wall, floor_cpu = results[FLOOR]
    print(f"median of {runs} cold runs each (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    print(f"  {'':<30} {'wall':>8} {'over floor':>11} {'cpu':>8} {'over floor':>11}")
    for name, (wall, cpu) in results.items():
        over = ("", "") if name == FLOOR else (f"+{wall - floor_wall:.3f} s", f"+{cpu - floor_cpu:.3f} s")
        print(f"  {name:<30} {wall:6.3f} s {over[0]:>11} {cpu:6.3f} s {over[1]:>11}")
    worst = max(wall for name, (wall, _) in results.items() if name != FLOOR)
    verdict = "ok" if worst < TARGET_S else "TOO SLOW"
    print(f"target: whole process < {TARGET_S} s wall (worst case {worst:.3f} s): {verdict}")
    return 0 if worst < TARGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 9))
