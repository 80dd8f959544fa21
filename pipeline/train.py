"""Stage ``train``: Lightning training of BLADE (and the trained baselines) on the training split.

    blade train                                   # every variant in train.variants
    blade train --set train.variants=[daemon] --set train.max_epochs=3
    dvc exp run -S 'train.variants=[blade,no_adaptive,no_bias,daemon,sage]'

Runbook:
- one CPU (default): ``accelerator: auto`` finds no GPU and trains on the CPU;
- one GPU: nothing to change, ``auto`` picks it (the sampler stays on the CPU);
- several GPUs: ``--set train.strategy=ddp --set train.devices=4``; several machines: the same
  plus ``--set train.num_nodes=2`` and ``MASTER_ADDR``, ``MASTER_PORT``, ``NODE_RANK`` on each.
  Lightning starts the other ranks by running ``blade train`` again; they train and write nothing;
- an interrupted run resumes from ``outputs/checkpoints/<variant>/last.ckpt`` when the
  parameters are unchanged (a fingerprint of them is stored beside the checkpoint).

Outputs per variant in ``outputs/train/<variant>/``: ``model.ckpt`` (best validation MRR@10),
``embeddings.pt`` (source / target embeddings and score scale for evaluation and export),
``summary.json``; metrics for all variants in ``metrics/train.json``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from models import training
from models.baselines import walk_families
from models.module import LinkPredictionModule, TrainingDivergedError
from models.sampler import NeighbourhoodSampler
from models.training import MONITOR  # noqa: F401 (for the stages)
from models.variants import Variant, get_variant
from models.walk_channel import WalkSearch
from pipeline import provenance, tracking
from pipeline.artifacts import SplitGraph, load_split_graph
from pipeline.config import ConfigError, with_values
from pipeline.degree_stats import with_power_law
from pipeline.fitting import FINISHED_FILE, FitResult, fit_module
from pipeline.settings import BaselineSettings, NeighbourhoodSettings, TrainSettings, as_settings, typed
from pipeline.storage import atomic_directory, atomic_path, whole_outputs, write_json

log = logging.getLogger(__name__)

OUTPUT_DIR = Path("outputs/train")
TUNED_PARAMS_PATH = Path("outputs/tune/best_params.json")
CHECKPOINT_DIR = Path("outputs/checkpoints")
# The tuning trials' checkpoints (pipeline.tune): the best complete trial's stays as "best",
# with its number in trial.txt, and train continues it instead of training it again.
TRIAL_CHECKPOINTS = Path("outputs/tune/checkpoints")
TUNED_VARIANT = "blade"  # the variant tuning trials train
BEST_TRIAL_CHECKPOINT = TRIAL_CHECKPOINTS / "best"
METRICS_PATH = Path("metrics/train.json")


def build_sampler(variant: Variant, graph: SplitGraph, neighbourhood: NeighbourhoodSettings | dict[str, Any],
                  fixed_fanout: int) -> NeighbourhoodSampler:
    """:func:`models.training.build_sampler` with the settings checked."""
    return training.build_sampler(variant, graph, as_settings(neighbourhood, NeighbourhoodSettings),
                                  fixed_fanout)


def build_module(variant: Variant, graph: SplitGraph, neighbourhood: NeighbourhoodSettings | dict[str, Any],
                 config: TrainSettings | dict[str, Any], seed: int) -> LinkPredictionModule:
    """:func:`models.training.build_module` with the settings checked (mappings take the schema's
    defaults for missing keys)."""
    return training.build_module(variant, graph, as_settings(neighbourhood, NeighbourhoodSettings),
                                 as_settings(config, TrainSettings), seed)


def fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def fit_variant(
    variant_name: str,
    graph: SplitGraph,
    neighbourhood: NeighbourhoodSettings | dict[str, Any],
    config: TrainSettings | dict[str, Any],
    seed: int,
    checkpoint_dir: Path | None,
    callbacks: list[pl.Callback] | None = None,
    logger: Any = False,
    progress: bool = True,
    walk_channel: bool = True,
    baselines: BaselineSettings | dict[str, Any] | None = None,
    walks: WalkSearch | None = None,
) -> FitResult:
    """Train one variant (:func:`pipeline.fitting.fit_module`); resume from
    ``checkpoint_dir/last.ckpt`` if it has the same fingerprint of settings, seed and graph.
    The walk channel is fitted when ``walk_channel``, ``train.walk_channel`` and the variant has
    one (tuning trials pass False: their objective is the embeddings' validation MRR@10), from
    the walks of ``baselines`` (``evaluate.baselines``; None: the schema's defaults) at the grid
    points those baselines pick (:func:`channel_walks`); pass ``walks``, built once for
    ``graph``, to share the walks' tables between the variants of one split."""
    variant = get_variant(variant_name)
    config = as_settings(config, TrainSettings)
    neighbourhood = as_settings(neighbourhood, NeighbourhoodSettings)
    pl.seed_everything(seed, workers=True, verbose=False)
    module = build_module(variant, graph, neighbourhood, config, seed)
    # What trains this model: not which other variants train beside it, whether tuned values
    # were asked for (the values themselves are in), or the size of the validation sample (a
    # tuning trial ranks fewer edges each epoch; train continues it)
    model_settings = config.model_dump(exclude={"variants", "use_tuned", "val_queries"})
    stamp = fingerprint(variant_name, neighbourhood.model_dump(), model_settings,
                        seed, graph.num_nodes, int(graph.train.shape[1]), int(graph.train.sum()))
    with_channel = walk_channel and config.walk_channel and variant.walk_channel
    return fit_module(module, config, checkpoint_dir, stamp, callbacks, logger, progress,
                      label=variant_name,
                      walk_channel=(walks or channel_walks(graph, baselines)) if with_channel else None,
                      refit_target_prior=walk_channel and config.refit_target_prior)


# The walk channel's candidates: the walk baselines, by the names the report gives them.
CHANNEL_WALKS = {"walk on A + A^T": "walk", "walk on A": "walk_directed", "RP3beta on A + A^T": "rp3beta",
                 "RP3beta on A": "rp3beta_directed"}


def channel_walks(graph: SplitGraph, baselines: BaselineSettings | dict[str, Any] | None) -> WalkSearch:
    """The walks BLADE's channel may use: the shipped walk baselines with their grids, each grid
    point chosen on the baselines' share of the validation edges (``val_queries``, the first of
    the same seeded sample), so the channel's walk is never weaker than its baseline's."""
    config = as_settings(baselines if baselines is not None else {}, BaselineSettings)
    families = walk_families(graph.train, graph.num_nodes, config.walk_weights, config.rp3beta_alpha,
                             config.rp3beta_beta)
    return WalkSearch({name: families[key] for name, key in CHANNEL_WALKS.items()}, config.val_queries)


def save_embeddings(path: Path, result: FitResult, variant: str) -> None:
    """``embeddings.pt``: source / target embeddings, score scale and the walk channel (None
    without one), what evaluate, export and compare read (:func:`models.evaluation.saved_scorers`)."""
    source, target = result.module.embeddings()
    walk = result.walk_channel.to_dict() if result.walk_channel is not None else None
    with atomic_path(path) as tmp:
        torch.save({"variant": variant, "source": source, "target": target,
                    "scale": float(result.module.encoder.scale.detach()), "walk_channel": walk}, tmp)


def adopt_trial_checkpoint(study: dict[str, Any] | None, checkpoint_dir: Path) -> bool:
    """Put the chosen tuning trial's checkpoints where training resumes from: the trial trained
    this very configuration (same variant, values, seed and graph: the same fingerprint), so
    training keeps its best epoch instead of repeating it (:func:`pipeline.fitting.fit_module`
    trains nothing more on a finished run's checkpoints). Returns whether it did; a different
    fingerprint is left to :func:`pipeline.fitting.fit_module`, which then starts afresh."""
    trial_file = BEST_TRIAL_CHECKPOINT / "trial.txt"  # "<study name> <trial number>"
    if study is None or not trial_file.is_file():
        return False
    if trial_file.read_text().split() != [str(study["study"]), str(study["trial"])]:
        return False  # another study's or another trial's checkpoints
    stamp = BEST_TRIAL_CHECKPOINT / "fingerprint.txt"
    if not stamp.is_file() or not (BEST_TRIAL_CHECKPOINT / FINISHED_FILE).is_file():
        return False  # only a trial that ran to its end is taken over as it is
    own = checkpoint_dir / "fingerprint.txt"
    if own.is_file() and own.read_text() == stamp.read_text():
        return True  # already adopted (an interrupted train resumes from its own progress)
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    shutil.copytree(BEST_TRIAL_CHECKPOINT, checkpoint_dir)
    return True


def tuned_study() -> dict[str, Any] | None:
    """The tune stage's result (``outputs/tune/best_params.json``), or None if it has not run."""
    if not TUNED_PARAMS_PATH.is_file():
        return None
    return json.loads(TUNED_PARAMS_PATH.read_text())


def with_tuned_values(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``params`` with the best trial's values when ``train.use_tuned`` (default true) and a study ran."""
    study = tuned_study() if params["train"]["use_tuned"] else None
    if study is None:
        return params, None
    log.info("train: using the tuned values of trial %d (val MRR@10 %.4f): %s", study["trial"],
             study["value"], study["overrides"])
    return with_values(params, study["overrides"]), study


@whole_outputs
def main(params: dict[str, Any]) -> dict[str, Any]:
    params, study = with_tuned_values(params)
    settings = typed(params)
    base, config, neighbourhood = settings.base, settings.train, settings.neighbourhood
    seed = base.seed
    graph = with_power_law(load_split_graph())  # alpha_hat from the degree statistics
    if not tracking.is_rank_zero():
        # A DDP rank > 0: Lightning starts it by running `blade train` again. It runs the same
        # fits in the same order (their collective operations need every rank) and writes
        # nothing: outputs, checkpoints, metrics and MLflow runs are rank 0's.
        for name in config.variants:
            fit_variant(name, graph, neighbourhood, config, seed, CHECKPOINT_DIR / name, progress=False,
                        baselines=settings.evaluate.baselines)
        return {}
    client = tracking.client()
    experiment_id = tracking.experiment_id(client, settings.mlflow.experiment)
    metrics: dict[str, Any] = {}
    with atomic_directory(OUTPUT_DIR) as tmp:
        for name in config.variants:
            log.info("train: %s (%s) on %s", name, get_variant(name).description, base.dataset)
            # A top-level run: the trained models are what a user looks for first. The study it
            # took its values from is a link (tags), not a parent.
            tags = {"variant": name, "dataset": base.dataset, "data_version": provenance.data_version()}
            if study is not None:
                tags |= {"tune.study": study["study"], "tune.trial": str(study["trial"]),
                         "tune.run_id": study.get("mlflow_parent_run_id") or "",
                         "tune.trial_run_id": study.get("mlflow_run_id") or ""}
            run_id = tracking.start_run(client, experiment_id, f"train-{name}", "train", tags)
            logged = {key: params[key] for key in ("base", "neighbourhood", "train")}
            tracking.log_params(client, run_id, logged | {"tuned_trial": study["trial"] if study else None})
            tracking.log_dataset(client, run_id, base.dataset, params["ingest"]["edges"],
                                 tracking.split_sizes(graph), "training")
            if name == TUNED_VARIANT and adopt_trial_checkpoint(study, CHECKPOINT_DIR / name):
                log.info("train: %s continues tune trial %d's checkpoint (the same configuration) "
                         "instead of training it again", name, study["trial"])
                client.set_tag(run_id, "tune.continued_trial", str(study["trial"]))
                if study.get("mlflow_run_id"):  # the run page shows every epoch of this model
                    tracking.copy_curves(client, study["mlflow_run_id"], run_id)
            try:
                result = fit_variant(name, graph, neighbourhood, config, seed, CHECKPOINT_DIR / name,
                                     callbacks=[tracking.EpochMetricsLogger(client, run_id)],
                                     baselines=settings.evaluate.baselines)
            except TrainingDivergedError as error:
                client.set_terminated(run_id, "FAILED")
                raise ConfigError(f"train {name}: {error}") from error
            except BaseException:  # interrupted: the run says so; the checkpoint resumes it
                client.set_terminated(run_id, "KILLED")
                raise
            out = tmp / name
            out.mkdir()
            save_embeddings(out / "embeddings.pt", result, name)
            if result.best_checkpoint is not None:
                shutil.copy(result.best_checkpoint, out / "model.ckpt")
            edges_per_second = graph.train.shape[1] / result.seconds_per_epoch
            summary = {
                "variant": name, "best_val_mrr@10": round(result.best_score, 5),
                "target_prior": result.target_prior,
                "walk_channel": result.walk_fit,
                "epochs": result.epochs, "seconds": round(result.seconds, 1),
                "seconds_per_epoch": round(result.seconds_per_epoch, 2),
                "train_edges_per_second": round(edges_per_second),
            }
            tracking.log_metrics(client, run_id, tracking.summary_metrics(summary))
            if result.target_prior is not None:
                tracking.log_metrics(client, run_id, {
                    "best/val_mrr@10_target_prior": result.target_prior["mrr@10"],
                    "run/target_prior_gamma": result.target_prior["gamma"]})
            if result.walk_fit is not None:
                tracking.log_metrics(client, run_id, {
                    "best/val_mrr@10_walk_channel": result.walk_fit["val_mrr@10"],
                    "run/walk_channel_weight": result.walk_fit["weight"]})
            client.set_terminated(run_id, "FINISHED")
            write_json(out / "summary.json", {**summary, "mlflow_run_id": run_id,
                                              "tuned_trial": study["trial"] if study else None})
            metrics[name] = {key: value for key, value in summary.items() if key != "variant"}
            log.info("train: %s best val MRR@10 %.4f after %d epochs, %.1f s/epoch (%s edges/s)",
                     name, result.best_score, result.epochs, result.seconds_per_epoch,
                     f"{edges_per_second:,.0f}")
    write_json(METRICS_PATH, metrics)
    return metrics
