"""Shared fixtures. Real third-party data lives in ../shared/data and is optional."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

# Tests must not pick up a developer's runs directory or spawn GPU work by accident.
os.environ.setdefault("ROASTCORE_RUNS", str(REPO_ROOT / ".pytest_runs"))

# Tests of files another branch is rewriting (roastcore.forecast's split) that fit the prefix kNN or
# a model for seconds: `slow` here until their own file marks them (then this list goes).
SLOW_ELSEWHERE = (
    "tests/test_forecast.py::test_calibrated_band_covers_held_out_synthetic_roasts",
    "tests/test_forecast.py::test_each_method_returns_a_well_formed_forecast",
    "tests/test_forecast.py::test_fcs_already_behind_is_not_predicted",
    "tests/test_forecast.py::test_cli_forecast_json_shape",
    "tests/test_forecast.py::test_model_prefix_prior_band_is_calibrated_without_self_neighbours",
    "tests/test_forecast.py::test_model_on_a_prefix_knn_prior_refits_with_its_library",
    "tests/test_forecast.py::test_model_forecaster_says_when_its_band_is_calibrated_on_seen_roasts",
)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid.split("[")[0] in SLOW_ELSEWHERE:
            item.add_marker(pytest.mark.slow)


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
