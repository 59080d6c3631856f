"""Dashboard render times: each page through AppTest (app.py + sidebar + the page), in-process.

    python benchmarks/bench_dashboard.py                     # demo runs, synthetic:30
    python benchmarks/bench_dashboard.py --data synthetic    # the default 200-roast set

The demo checkpoints (checkpoints/demo_*) are copied into a temporary runs directory without
their evaluation caches. Reported per page:

- cold: the first render of that page in a fresh process after the imports (server start), as a
  user clicking through the pages in order sees it (caches fill as they go);
- warm: the median of --repeat later renders in new sessions (a browser refresh): Streamlit's
  caches are warm.

The imports (torch, streamlit, roastcore) are timed separately: a server pays them once.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAGES = [
    ("pages/data_page.py", "Data"),
    ("pages/setup_page.py", "Experiment setup"),
    ("pages/jobs_page.py", "Training jobs"),
    ("pages/teacher_forcing_page.py", "Teacher forcing"),
    ("pages/diagnostic_page.py", "Generation diagnostic"),
    ("pages/compare_page.py", "Compare curves"),
]


def render(page: str) -> float:
    """Seconds for one render of `page` in a new session (app.py's first run not counted for
    pages other than Data, which is the default page)."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=600)
    t0 = time.perf_counter()
    at.run()
    first = time.perf_counter() - t0
    if page.endswith("data_page.py"):
        seconds = first
    else:
        at.switch_page(page)
        t0 = time.perf_counter()
        at.run()
        seconds = time.perf_counter() - t0
    if at.exception or at.error:
        raise SystemExit(f"{page}: {[e.value for e in list(at.exception) + list(at.error)]}")
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="synthetic:30", help="ROASTCORE_DEFAULT_DATA (default synthetic:30)")
    parser.add_argument("--demos", default=str(REPO / "checkpoints"), help="folder holding demo_* runs")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    demos = sorted(p for p in Path(args.demos).glob("demo_*") if (p / "model.safetensors").is_file())
    if not demos:
        print(f"no demo runs in {args.demos}", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="bench_dashboard_"))
    try:
        for d in demos:
            shutil.copytree(d, tmp / d.name, ignore=shutil.ignore_patterns("eval_cache"))
        os.environ["ROASTCORE_RUNS"] = str(tmp)
        os.environ["ROASTCORE_DEFAULT_DATA"] = args.data

        t0 = time.perf_counter()
        import streamlit  # noqa: F401
        import torch  # noqa: F401

        import roastcore.evaluate  # noqa: F401
        import roastcore.inspect_run  # noqa: F401
        import roastcore.plotting  # noqa: F401
        imports = time.perf_counter() - t0

        cold = {page: render(page) for page, _ in PAGES}
        warm = {page: statistics.median(render(page) for _ in range(args.repeat)) for page, _ in PAGES}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"data={args.data} demos={', '.join(d.name for d in demos)} cpus={os.cpu_count()} "
          f"torch_threads={__import__('torch').get_num_threads()}")
    print(f"imports: {imports:.2f} s")
    print(f"{'page':<24} {'cold s':>7} {'warm s':>7}")
    for page, title in PAGES:
        print(f"{title:<24} {cold[page]:>7.2f} {warm[page]:>7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
