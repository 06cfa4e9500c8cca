"""Cold start: each handler module's import time against boto3 + Powertools alone, in fresh interpreters.

Every figure is the median of several imports, each in a new `python -c` process timed around
the import statement alone (interpreter start-up excluded). The verdict uses the CPU time the
import takes (`time.process_time()`), which stays meaningful on a busy machine; the wall time
(`time.perf_counter()`) is printed beside it, and on an idle machine (a Lambda sandbox) the two
agree. Runs are interleaved (baseline, handler, handler, ...) so that load spreads evenly.
Bytecode is compiled once into a temporary cache before measuring, as for code deployed with its
`.pyc` files; the environment is Lambda's (tracing on), so Powertools behaves as deployed.

Goal (issue 2): each handler at most 1.3x the baseline, and none of numpy, Pillow, TensorFlow or
onnxruntime loaded. The `+models` column adds `tensorgate.models` (pydantic and the domain
records), which every request loads on first use: what the handler's first request adds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BASELINE = "boto3, aws_lambda_powertools"
GOAL_RATIO = 1.3
HEAVY_MODULES = ("numpy", "PIL", "tensorflow", "onnxruntime")
PROBE = """
import json, sys, time
started, cpu_started = time.perf_counter(), time.process_time()
import {modules}
elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
print(json.dumps({{"wall": elapsed, "cpu": cpu, "heavy": [m for m in {heavy!r} if m in sys.modules]}}))
"""


def handler_modules() -> list[str]:
    """The API handlers (`functions/*_api/app.py`) and the dead-letter handler, when present."""
    paths = sorted(REPO_ROOT.glob("functions/*_api/app.py"))
    dead_letters = REPO_ROOT / "functions" / "dead_letter_handler" / "app.py"
    if dead_letters.exists():
        paths.append(dead_letters)
    return [".".join(path.relative_to(REPO_ROOT).with_suffix("").parts) for path in paths]


def lambda_environment(pycache: str) -> dict[str, str]:
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "POWERTOOLS_")) and name != "PYTHONDONTWRITEBYTECODE"
    }
    return environment | {
        "PYTHONPATH": str(REPO_ROOT),
        "PYTHONPYCACHEPREFIX": pycache,
        "LAMBDA_TASK_ROOT": str(REPO_ROOT),
        "AWS_LAMBDA_FUNCTION_NAME": "cold-start-bench",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "tensorgate",
        "POWERTOOLS_METRICS_NAMESPACE": "Tensorgate",
    }


def import_once(modules: str, environment: dict[str, str]) -> tuple[float, float, list[str]]:
    probe = PROBE.format(modules=modules, heavy=HEAVY_MODULES)
    completed = subprocess.run(
        [sys.executable, "-c", probe], env=environment, cwd=REPO_ROOT, capture_output=True, text=True
    )
    if completed.returncode != 0:
        raise SystemExit(f"importing {modules} failed:\n{completed.stderr}")
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    return float(result["cpu"]), float(result["wall"]), list(result["heavy"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="imports per module (median taken; at least 5)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a handler misses the ratio goal")
    args = parser.parse_args(argv)
    runs = max(5, args.runs)
    handlers = handler_modules()
    subjects = [BASELINE] + handlers + [f"{handler}, tensorgate.models" for handler in handlers]

    with tempfile.TemporaryDirectory(prefix="tensorgate-pycache-") as pycache:
        environment = lambda_environment(pycache)
        for subject in subjects:  # compile the bytecode once; not measured
            import_once(subject, environment)
        cpu_seconds: dict[str, list[float]] = {subject: [] for subject in subjects}
        wall_seconds: dict[str, list[float]] = {subject: [] for subject in subjects}
        heavy: dict[str, set[str]] = {subject: set() for subject in subjects}
        for _ in range(runs):
            for subject in subjects:
                cpu, wall, loaded = import_once(subject, environment)
                cpu_seconds[subject].append(cpu)
                wall_seconds[subject].append(wall)
                heavy[subject].update(loaded)

    median = {subject: statistics.median(values) * 1000 for subject, values in cpu_seconds.items()}
    wall = {subject: statistics.median(values) * 1000 for subject, values in wall_seconds.items()}
    baseline = median[BASELINE]
    width = max(len(name) for name in [f"baseline: import {BASELINE}", *handlers])
    print(f"Cold start: import time in a fresh interpreter, median of {runs} runs (goal <= {GOAL_RATIO}x baseline)")
    print(f"{'module':<{width}}  {'import ms':>9}  {'ratio':>5}  {'wall ms':>7}  {'+models ms':>10}  verdict")
    print(f"{'baseline: import ' + BASELINE:<{width}}  {baseline:9.1f}  {1:5.2f}  {wall[BASELINE]:7.1f}")
    failures = 0
    heavy_found = False
    for handler in handlers:
        ratio = median[handler] / baseline
        loaded = sorted(heavy[handler])
        verdict = "PASS" if ratio <= GOAL_RATIO and not loaded else "FAIL"
        reasons = [f"over {GOAL_RATIO}x"] if ratio > GOAL_RATIO else []
        reasons += [f"imports {', '.join(loaded)}"] if loaded else []
        failures += verdict == "FAIL"
        heavy_found |= bool(loaded)
        with_models = median[f"{handler}, tensorgate.models"]
        detail = f" ({'; '.join(reasons)})" if reasons else ""
        print(
            f"{handler:<{width}}  {median[handler]:9.1f}  {ratio:5.2f}  {wall[handler]:7.1f}  "
            f"{with_models:10.1f}  {verdict}{detail}"
        )
    checked = ", ".join(HEAVY_MODULES)
    print(f"{len(handlers) - failures} of {len(handlers)} handlers PASS; heavy modules checked: {checked}")
    if heavy_found or (args.strict and failures):
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
