"""Tuning designs against wall time: the best validation MRR@10 a study has found after t
seconds, for the earlier design and the current one, on the ingested graph, in one run.

    blade ingest && blade degree-stats && python bench/bench_tuning.py [--seconds 600]

- **earlier:** a median pruner (2 startup trials), every trial ranks ``train.val_queries``
  validation edges each epoch and trains until early stopping unless the median stops it;
- **current:** successive halving over epochs (``tune.halving_min_epochs``,
  ``tune.halving_rate``) and ``tune.val_queries`` validation edges per epoch.

Both studies get the same search space, seed, trial 0 (``params.yaml``'s values) and
``--seconds`` (no new trial after it; default ``tune.timeout_seconds``). ``--same-sample`` gives
the earlier design the current one's validation sample, so the two values are on the same edges
and only the pruning differs. Prints, for each design, every trial (end time, state, epochs,
value) and the best value so far at each minute. Studies and MLflow runs go to a temporary
folder; nothing of the project's is written.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import optuna

from pipeline.artifacts import load_split_graph
from pipeline.config import load_params
from pipeline.degree_stats import with_power_law
from pipeline.settings import typed
from pipeline.tune import run_study


def trials_over_time(study: optuna.Study, started: float) -> list[tuple[float, str, int, float | None]]:
    """``(seconds since the study started, state, epochs reported, value or best reported)``."""
    rows = []
    for trial in study.trials:
        if trial.datetime_complete is None:
            continue
        reported = trial.intermediate_values.values()
        value = trial.value if trial.value is not None else max(reported, default=None)
        rows.append((trial.datetime_complete.timestamp() - started, trial.state.name.lower(),
                     len(trial.intermediate_values), value))
    return sorted(rows)


def best_so_far(rows, minutes: int) -> list[float | None]:
    """The best value of a trial that completed (not pruned) by the end of each minute."""
    out = []
    for minute in range(1, minutes + 1):
        done = [value for seconds, state, _, value in rows if state == "complete" and seconds <= 60 * minute]
        out.append(max(done) if done else None)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, help="budget of each study (default tune.timeout_seconds)")
    parser.add_argument("--same-sample", action="store_true",
                        help="the earlier design ranks tune.val_queries edges too")
    args = parser.parse_args()
    params = typed(load_params()).model_dump(by_alias=True)
    seconds = args.seconds or params["tune"]["timeout_seconds"]
    graph = with_power_law(load_split_graph())
    folder = Path(tempfile.mkdtemp(prefix="bench-tuning-"))
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder / 'mlflow.db'}"
    designs = {
        "earlier": (dict(params["tune"], val_queries=params["tune"]["val_queries"] if args.same_sample
                         else None), optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)),
        "current": (params["tune"], None),
    }
    curves = {}
    for name, (tune, pruner) in designs.items():
        tune = dict(tune, n_trials=1000, timeout_seconds=seconds)
        storage = f"sqlite:///{folder / name}.db"
        started = time.time()
        run_study(graph, params, tune, name, storage, "bench-tuning", pruner=pruner)
        rows = trials_over_time(optuna.load_study(study_name=name, storage=storage), started)
        print(f"\n{name}: {len(rows)} trials in {time.time() - started:.0f} s "
              f"(validation edges per epoch: {tune['val_queries'] or params['train']['val_queries']})")
        for end, state, epochs, value in rows:
            shown = f"{value:.4f}" if value is not None else "-"
            print(f"  {end:7.0f} s  {state:9s} {epochs:3d} epochs  {shown}")
        curves[name] = best_so_far(rows, int(seconds // 60) + 5)
    print("\nbest validation MRR@10 of a complete trial by wall time")
    print("minute  " + "  ".join(f"{name:>8s}" for name in curves))
    for minute in range(len(next(iter(curves.values())))):
        cells = [f"{curve[minute]:8.4f}" if curve[minute] is not None else f"{'-':>8s}"
                 for curve in curves.values()]
        print(f"{minute + 1:6d}  " + "  ".join(cells))


if __name__ == "__main__":
    main()
