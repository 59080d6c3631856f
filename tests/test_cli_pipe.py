"""Every CLI command piped into a reader that has gone (`roastcore ... | head -1`) exits quietly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _into_closed_pipe(*args: str) -> subprocess.CompletedProcess:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first write: every write fails (EPIPE)
    try:
        return subprocess.run([sys.executable, "-m", "roastcore", *args], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120, cwd=REPO_ROOT)
    finally:
        os.close(write_end)


@pytest.mark.slow
@pytest.mark.parametrize("args", [
    ("--help",),
    ("jobs", "list"),
    ("jobs", "list", "--json"),
    ("data", "summary", "synthetic:20"),
    ("presets", "--json"),
], ids=lambda a: " ".join(a))
def test_output_into_a_closed_pipe_exits_quietly(args, tmp_path):
    if args[0] == "jobs":
        args = (*args, "--runs", str(tmp_path / "runs"))
    result = _into_closed_pipe(*args)
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr
    assert "Exception ignored" not in result.stderr
    # 141 = 128 + SIGPIPE, as for a writer killed by SIGPIPE (argparse swallows it: 0).
    assert result.returncode == (0 if args == ("--help",) else 141)
