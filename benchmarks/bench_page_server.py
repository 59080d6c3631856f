"""The server's part of opening Compare and the Generation diagnostic on checkpoints never loaded.

    python benchmarks/bench_page_server.py                          # this checkout
    python benchmarks/bench_page_server.py --against ../main --rounds 3

Runs the dashboard in-process with Streamlit's AppTest (no browser), on a warm process (one
session served, the start-up warm-up finished), against a runs directory of copied demo runs
(each run's stored files as shipped, so every measurement opens runs never loaded before), with
the background prefetch off. Each measurement is one script run on the server, timed around
Streamlit's execution of the script (wall clock, and the CPU time of the script's thread, which
other load on the machine inflates less):

- compare, 3 runs: a session whose URL selected three runs (on the Data page, which loads none)
  opens Compare curves: the runs' files, curves and figure, as a deep link with 3 runs does;
- diagnostic: the same for one run and the Generation diagnostic;
- compare pick: on Compare curves, another checkpoint is picked in the sidebar.

`--against DIR` measures another checkout (e.g. main) too, in alternating processes, each with
its own code and its own demo runs; prints the median of each and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KINDS = ("compare, 3 runs", "diagnostic", "compare pick")


def child(repo: Path, repeat: int, data: str) -> dict:
    """Measure in this process the app of `repo` (its code and its demo runs)."""
    sys.path.insert(0, str(repo))
    runs = Path(tempfile.mkdtemp(prefix="bench_page_server_"))
    demos = sorted(p for p in (repo / "checkpoints").glob("demo_*") if (p / "model.safetensors").is_file())
    names = []  # copy by copy, so that a trio holds three different demo runs
    for k in range(1 + -(-5 * repeat // len(demos))):
        for demo in demos:
            names.append(demo.name if k == 0 else f"{demo.name}-{k + 1}")
            shutil.copytree(demo, runs / names[-1], ignore=shutil.ignore_patterns("eval_cache"))
    os.environ.update(ROASTCORE_RUNS=str(runs), ROASTCORE_DEFAULT_DATA=data, ROASTCORE_PREFETCH="0")
    from streamlit.runtime.scriptrunner import script_runner
    from streamlit.testing.v1 import AppTest

    timed: list = []
    run_script = script_runner.exec_func_with_error_handling

    def timed_run(func, ctx):  # the script run itself, on the script's thread
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            return run_script(func, ctx)
        finally:
            timed.append((time.perf_counter() - t0, time.thread_time() - c0))

    script_runner.exec_func_with_error_handling = timed_run
    app = str(repo / "app.py")

    def session(query: dict) -> AppTest:
        at = AppTest.from_file(app, default_timeout=300)
        at.query_params.update(query)
        at.run()
        return at

    def measure(at: AppTest, action) -> tuple[float, float]:
        timed.clear()
        action(at).run()
        assert not at.exception and not at.error, [e.value for e in list(at.exception) + list(at.error)]
        return sum(w for w, _ in timed), sum(c for _, c in timed)

    try:
        session({"run": demos[0].name}).switch_page("pages/compare_page.py").run()  # warm: one session
        for th in threading.enumerate():
            if th.name == "roastlab-warm-up":
                th.join()
        fresh = iter(names[len(demos):])
        out: dict = {k: [] for k in KINDS}
        for _ in range(repeat):
            trio = [next(fresh) for _ in range(3)]
            at = session({"run": trio[0], "cmp": ",".join(trio[1:])})
            out["compare, 3 runs"].append(measure(at, lambda a: a.switch_page("pages/compare_page.py")))
            at = session({"run": next(fresh)})
            out["diagnostic"].append(measure(at, lambda a: a.switch_page("pages/diagnostic_page.py")))
            name = next(fresh)
            at = session({"run": demos[0].name})
            at.switch_page("pages/compare_page.py").run()
            out["compare pick"].append(measure(at, lambda a, name=name: next(
                w for w in a.sidebar.selectbox if w.label == "Checkpoint").set_value(name)))
        return out
    finally:
        shutil.rmtree(runs, ignore_errors=True)


def run_child(repo: Path, repeat: int, data: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(repo))
    proc = subprocess.run([sys.executable, __file__, "--child", str(repo), "--repeat", str(repeat), "--data", data],
                          env=env, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(f"{repo}: the measuring process failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--against", type=Path, help="another checkout to measure alternately (e.g. main's)")
    parser.add_argument("--rounds", type=int, default=3, help="processes per checkout (alternating)")
    parser.add_argument("--repeat", type=int, default=2, help="measurements of each kind per process")
    parser.add_argument("--data", default="synthetic", help="ROASTCORE_DEFAULT_DATA (default: synthetic, 200 roasts)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child.resolve(), args.repeat, args.data)))
        return 0
    repos = {"this": REPO} | ({"against": args.against.resolve()} if args.against else {})
    got: dict = {name: {k: [] for k in KINDS} for name in repos}
    for _ in range(args.rounds):
        for name, repo in repos.items():
            for kind, values in run_child(repo, args.repeat, args.data).items():
                got[name][kind] += values
    load = os.getloadavg()
    print(f"data={args.data} cpus={os.cpu_count()} load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; "
          f"{args.rounds} process(es) x {args.repeat} per checkout; median s (max), wall / script-thread CPU")
    for kind in KINDS:
        cells = []
        for name in repos:
            wall = [w for w, _ in got[name][kind]]
            cpu = [c for _, c in got[name][kind]]
            cells.append(f"{name}: {statistics.median(wall):.3f} ({max(wall):.3f}) / {statistics.median(cpu):.3f}")
        if args.against:
            ratio = statistics.median(w for w, _ in got["against"][kind]) / statistics.median(
                w for w, _ in got["this"][kind])
            cells.append(f"against/this {ratio:.1f}x")
        print(f"{kind:<16} " + "   ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
