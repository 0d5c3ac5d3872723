"""Training with one LightGBM thread or two, alone and beside another training job.

    uv run python bench/training_threads.py

Each case starts fresh processes that train the fast way (the tuned defaults, with
quantile calibration, no backtest, as the tests do) and times `train` alone. "Shared"
starts two such processes at once, as CI's parallel stages or a Prefect worker beside
other jobs would. The ratios compare cases taken in this one run; on a machine with
two cores, two threads per job oversubscribe it as soon as a second job starts.
"""

from __future__ import annotations

import multiprocessing
import time

from solar_mlops import model
from solar_mlops.training import TrainingConfig, prepare, train

FAST = TrainingConfig(tune=False, backtest=False)


def timed_training(threads: int) -> float:
    """Seconds to train once with `threads` LightGBM threads (runs in a child process)."""
    model.BASE_PARAMS["num_threads"] = threads
    prepared = prepare()
    started = time.perf_counter()
    train(FAST, prepared)
    return time.perf_counter() - started


def run(threads: int, jobs: int) -> float:
    """The slowest of `jobs` trainings started together."""
    with multiprocessing.get_context("spawn").Pool(jobs) as pool:
        return max(pool.map(timed_training, [threads] * jobs))


def main() -> None:
    results = {(threads, jobs): run(threads, jobs) for threads in (1, 2) for jobs in (1, 2)}
    print(f"{'threads':<9}{'alone s':>9}{'shared s':>10}{'shared/alone':>14}")
    for threads in (1, 2):
        alone, shared = results[threads, 1], results[threads, 2]
        print(f"{threads:<9}{alone:>9.1f}{shared:>10.1f}{shared / alone:>14.2f}")
    speedup = results[1, 1] / results[2, 1]
    penalty = results[2, 2] / results[1, 2]
    print(f"\ntwo threads alone: {speedup:.2f}x as fast as one")
    print(f"two threads shared: {penalty:.2f}x as slow as one")
    default = model.TRAINING_THREADS
    verdict = "PASS" if results[default, 2] <= min(results[1, 2], results[2, 2]) else "FAIL"
    print(f"{verdict}  the default, {default} thread per job, is the faster when jobs share cores")


if __name__ == "__main__":
    main()
