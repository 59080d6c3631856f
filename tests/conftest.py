"""Shared fixtures. Real third-party data lives in ../shared/data and is optional."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

# Tests must not pick up a developer's runs directory or spawn GPU work by accident.
os.environ.setdefault("ROASTCORE_RUNS", str(REPO_ROOT / ".pytest_runs"))
# Jobs at the starter's priority: under `-n 2` the other worker's tests would otherwise starve
# the jobs a test waits for (the dashboard's default, 10 levels lower, is tested on its own).
os.environ.setdefault("ROASTCORE_JOB_NICE", "0")

@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent (it is optional third-party data)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def onyx_dir(shared_data) -> Path:
    path = shared_data / "onyx-dev"
    if not path.is_dir():
        pytest.skip("../shared/data/onyx-dev is absent")
    return path


@pytest.fixture(scope="session")
def artisan_dir(shared_data) -> Path:
    path = shared_data / "artisan"
    if not path.is_dir():
        pytest.skip("../shared/data/artisan is absent")
    return path


@pytest.fixture(scope="session")
def synthetic_profiles():
    """40 simulated roasts, seed 0: the tiny fixture most model tests train on."""
    from roastcore.simulate import generate_dataset

    return generate_dataset(n=40, seed=0)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors run fastest on one thread, and a busy 2-core box makes OpenMP spin.
    Modules of small-model tests opt in with `pytestmark = pytest.mark.usefixtures(...)`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config, items):
    # With two workers (`pytest -n 2 --dist loadgroup`, the README's test command), the browser
    # tests share one worker and so one dashboard server, and Ray's tests one local cluster.
    for item in items:
        if item.get_closest_marker("e2e"):
            item.add_marker(pytest.mark.xdist_group("browser"))
        elif item.path.name == "test_ray_backend.py":
            item.add_marker(pytest.mark.xdist_group("ray"))
