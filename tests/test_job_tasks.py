"""Task jobs (roastcore/jobs/tasks.py): scoring a run and running a study as background jobs,
through the real job runner, supervisor and `python -m roastcore` processes."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from roastcore.jobs import (
    FAILED,
    SUCCEEDED,
    JobError,
    JobRunner,
    job_kind,
    latest_job,
    read_task_progress,
    submit_score,
    submit_study,
)
from roastcore.jobs.tasks import _ProgressTee

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "checkpoints" / "demo_teacher_forced"


def wait_done(runner: JobRunner, job_id: str, timeout_s: float = 300.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = runner.get(job_id)
        if not job.is_active:
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} still {runner.get(job_id).state}: {runner.logs(job_id)}")


@pytest.fixture
def unscored_run(tmp_path) -> Path:
    run = tmp_path / "runs" / "old-run"
    shutil.copytree(DEMO, run, ignore=shutil.ignore_patterns("eval_cache", "scores.json"))
    return run


def test_progress_lines_become_progress_json(tmp_path):
    class Sink:
        def __init__(self):
            self.text = ""

        def write(self, text):
            self.text += text

        def flush(self):
            pass

    sink, path = Sink(), tmp_path / "progress.json"
    tee = _ProgressTee(sink, path, "score", None)
    tee.write("INFO roastcore.evaluate: evaluate x: split\n[1/5] split\n[2/5] teach")
    assert json.loads(path.read_text())["done"] == 1  # a torn line waits for its end
    tee.write("er forcing\nroastcore score: error: --data x: no usable profiles\n")
    progress = json.loads(path.read_text())
    assert (progress["done"], progress["total"], progress["stage"]) == (2, 5, "teacher forcing")
    assert tee.last_error.endswith("no usable profiles") and "[2/5] teacher forcing" in sink.text
    study = _ProgressTee(sink, tmp_path / "study.json", "study", 4)
    for line in ("baselines fold 0: aligned kNN 3.10 °F", "INFO roastcore.train: micro fold 3 epochs",
                 "micro_model fold 1: free MAE 9.10 °F, TF 1.00 °F (3 s)", "extrapolation micro_model: free MAE 1"):
        study.write(line + "\n")
    assert json.loads((tmp_path / "study.json").read_text())["done"] == 3


@pytest.mark.slow  # runs a scoring job process
def test_a_score_job_scores_the_run_in_the_background(unscored_run):
    from roastcore.evaluate import needs_scoring, stored_report

    runner = JobRunner(unscored_run.parent)
    assert needs_scoring(unscored_run)
    job = submit_score(runner, unscored_run, data="synthetic:30")
    assert job_kind(job) == "score" and job.run_name == "score-old-run"
    # Submitting again while it is queued or running is the same job.
    assert submit_score(runner, unscored_run, data="synthetic:30").id == job.id
    done = wait_done(runner, job.id)
    assert done.state == SUCCEEDED, runner.logs(job.id)
    assert stored_report(unscored_run) is not None and not needs_scoring(unscored_run)
    progress = read_task_progress(done)
    assert progress.done == progress.total == 5 and progress.fraction == 1.0
    assert "[5/5]" in runner.logs(job.id, tail=200)
    assert latest_job(runner.list(), "score", unscored_run).id == job.id
    # Deleting the job removes its own folder, never the scored run.
    runner.delete(job.id)
    assert (unscored_run / "scores.json").is_file() and not (unscored_run.parent / "score-old-run").exists()
    # Scores current: a second job ends at once, successfully ("nothing to do").
    again = wait_done(runner, submit_score(runner, unscored_run, data="synthetic:30").id)
    assert again.state == SUCCEEDED and "nothing to do" in runner.logs(again.id)


@pytest.mark.slow  # runs a scoring job process
def test_a_failing_score_job_says_why(unscored_run):
    runner = JobRunner(unscored_run.parent)
    job = wait_done(runner, submit_score(runner, unscored_run, data=str(unscored_run.parent / "nothing")).id)
    assert job.state == FAILED and "not found" in job.reason


def test_score_and_study_submissions_are_checked(tmp_path):
    runner = JobRunner(tmp_path / "runs")
    with pytest.raises(JobError, match="no model.safetensors"):
        submit_score(runner, tmp_path / "missing")
    with pytest.raises(JobError, match="unknown preset"):
        submit_study(runner, "s1", "synthetic:12", ["no_such_preset"])
    with pytest.raises(JobError, match="folds"):
        submit_study(runner, "s1", "synthetic:12", ["micro_model"], folds=1)
    with pytest.raises(JobError, match="not a run name"):
        submit_study(runner, "../x", "synthetic:12", ["micro_model"])
    assert runner.list() == []


@pytest.mark.slow  # runs a study job process (baselines only plus one tiny preset fold)
def test_a_study_job_writes_results_with_progress(tmp_path):
    from roastcore.study import list_studies, load_study

    runner = JobRunner(tmp_path / "runs")
    job = submit_study(runner, "tiny-study", "synthetic:12", ["micro_model"], folds=2,
                       overrides={"epochs": 1, "d_model": 16, "n_layers": 1, "d_ff": 32, "step_s": 5},
                       extrapolation=False)
    assert job_kind(job) == "study"
    done = wait_done(runner, job.id, timeout_s=600)
    assert done.state == SUCCEEDED, runner.logs(job.id, tail=80)
    progress = read_task_progress(done)
    assert progress.total == 4 and progress.done == 4
    assert tmp_path / "runs" / "tiny-study" in list_studies(tmp_path / "runs")
    results = load_study(tmp_path / "runs" / "tiny-study")
    assert results["models"]["micro_model"]["folds_done"] == 2
