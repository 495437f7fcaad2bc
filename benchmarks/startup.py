"""Start-up time of every stage: seconds until `python -m stages.<name> --help` has imported
everything it needs and exits, and how much of it is imports (`python -X importtime`).

    python -m benchmarks.startup [--compare OTHER_CHECKOUT] [--rounds 3]

With --compare, the same stages of another checkout of the project (say, an export of an
earlier commit: `git archive <commit> | tar -x -C /tmp/before`) are timed in the same run,
the two taking turns, so that load from other processes hits them alike; figures are
medians over rounds.
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def stage_names(root: Path) -> list[str]:
    return sorted(p.stem for p in (root / "stages").glob("*.py") if p.stem != "__init__")


def start_up(root: Path, stage: str) -> tuple[float, float, dict[str, float]]:
    """Wall seconds of `--help`, seconds of imports, and the cumulative import seconds of
    every third-party package (the modules it pulled in included, so they overlap)."""
    env = dict(os.environ, PYTHONPATH=str(root))
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", f"stages.{stage}", "--help"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - started
    imported, packages = 0.0, {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.split("|")
        seconds = int(cumulative) / 1e6
        if not name.startswith("  "):  # one space after the bar: imported by the stage itself
            imported += seconds
        package = name.strip()
        if "." not in package and package not in ("pipeline", "stages"):
            packages[package] = max(packages.get(package, 0.0), seconds)
    return wall, imported, packages


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--compare", type=Path, help="another checkout, timed alongside")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stages", nargs="+", help="stage names (default: all)")
    args = parser.parse_args()
    here = Path(__file__).resolve().parents[1]
    roots = {"this checkout": here}
    if args.compare:
        roots = {"compared": args.compare.resolve(), **roots}
    stages = args.stages or stage_names(here)
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    walls = {(r, s): [] for r in roots for s in stages}
    imports = {(r, s): [] for r in roots for s in stages}
    heaviest = {}
    for _ in range(args.rounds):
        for stage in stages:
            for name, root in roots.items():
                wall, imported, modules = start_up(root, stage)
                walls[name, stage].append(wall)
                imports[name, stage].append(imported)
                heaviest[name, stage] = sorted(modules, key=modules.get, reverse=True)[:4]
    header = " | ".join(f"{r}: wall s | {r}: imports s" for r in roots)
    print(f"| stage | {header} | heaviest packages (this checkout) |")
    print("| --- |" + " ---: | ---: |" * len(roots) + " --- |")
    for stage in stages:
        cells = " | ".join(
            f"{np.median(walls[r, stage]):.2f} | {np.median(imports[r, stage]):.2f}" for r in roots
        )
        print(f"| {stage} | {cells} | {', '.join(heaviest['this checkout', stage])} |")
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
