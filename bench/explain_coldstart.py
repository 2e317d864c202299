"""Cold start of ``headfit explain``: the whole CLI process, median of several runs, against the floor
of ``python -c pass``. Target: under 0.3 s. Run: ``python bench/explain_coldstart.py [RUNS]``.

Each run is a fresh process. Bytecode caching is on (as after ``pip install``, which compiles it): one
untimed warm-up run per case writes the ``.pyc`` files even where PYTHONDONTWRITEBYTECODE is set.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

SEED = "shape '[2, -1, 91, 168, 96]' is invalid for input of size 64512"
TARGET_S = 0.3


def median_seconds(argv: list[str], runs: int) -> float:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    times = []
    for i in range(runs + 1):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, env=env)
        if i:  # run 0 is the warm-up that writes the bytecode cache
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(runs: int = 9) -> int:
    python = sys.executable
    cases = {
        "python -c pass (floor)": [python, "-c", "pass"],
        "headfit explain SEED": [python, "-m", "headfit", "explain", SEED],
        "headfit explain --json SEED": [python, "-m", "headfit", "explain", "--json", SEED],
    }
    results = {name: median_seconds(argv, runs) for name, argv in cases.items()}
    floor = results["python -c pass (floor)"]
    print(f"median of {runs} cold runs each")
    for name, seconds in results.items():
        over = "" if name.endswith("(floor)") else f"  (+{seconds - floor:.3f} s over the floor)"
        print(f"  {name:<30} {seconds:.3f} s{over}")
    worst = max(v for k, v in results.items() if not k.endswith("(floor)"))
    verdict = "ok" if worst < TARGET_S else "TOO SLOW"
    print(f"target < {TARGET_S} s: {verdict}")
    return 0 if worst < TARGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 9))
