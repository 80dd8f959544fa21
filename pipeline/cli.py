"""The ``blade`` command: one sub-command per DVC stage, plus the tools users run by hand.

    blade ingest                          # what `dvc repro ingest` runs
    blade degree-stats
    blade ingest --set ingest.edges=data/cora_ml/cora_ml.npz --set base.dataset=cora_ml

Every stage reads params.yaml (``--params`` to use another file); ``--set KEY=VALUE`` overrides
one value for this run only, like ``dvc exp run -S``. Exit status 2 means bad input or
configuration: the message names the file, line or key to fix.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import warnings

from pipeline.config import ConfigError, StageError, apply_overrides, load_params
from pipeline.readers import InputError
from pipeline.settings import check_params

# sub-command -> (module, help)
STAGES = {
    "ingest": ("pipeline.ingest", "read the raw edge list, map ids, clean, split train/val/test"),
    "degree-stats": ("pipeline.degree_stats",
                     "degree statistics, power-law alpha_hat, per-node neighbourhood sizes"),
    "tune": ("pipeline.tune", "Optuna study of the power-law and sampling parameters (MLflow-tracked)"),
    "train": ("pipeline.train", "Lightning training of BLADE and the trained baselines"),
    "evaluate": ("pipeline.evaluate", "filtered ranking metrics for every model and baseline"),
    "export": ("pipeline.export", "the trained scorer as ONNX, checked against PyTorch"),
    "register": ("pipeline.register",
                 "log evaluation to MLflow, register the model, move `champion` if it is better"),
    "score": ("pipeline.score", "batch recommendations from a registered model into Parquet"),
    "compare": ("pipeline.compare",
                "tuned BLADE vs its ablations, DAEMON and the baselines on one graph, over seeds"),
    "ablate": ("pipeline.ablation",
               "one training per model choice (params.yaml ablation.rows), on validation edges"),
    "report": ("pipeline.report", "docs/report.md and its plots from the `blade compare` results"),
    "summary": ("pipeline.summary", "what the last `dvc repro` produced, in at most 100 columns"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="blade",
        description="BLADE related-product recommendation on directed graphs: the pipeline "
        "stages (run them all with `dvc repro`) and batch tools.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `blade STAGE --help` for a stage's options. Parameters live in params.yaml.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", metavar="STAGE", required=True)
    for name, (module, help_text) in STAGES.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--params", default="params.yaml", help="parameters file (default: %(default)s)")
        sub.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                         help="override one parameter for this run, e.g. --set base.seed=7")
        extra = getattr(importlib.import_module(module), "add_arguments", None)
        if extra is not None:
            extra(sub)
        sub.set_defaults(module=module)
    return parser


class _DropMessages(logging.Filter):
    def __init__(self, *fragments: str) -> None:
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(fragment in record.getMessage() for fragment in self.fragments)


def quiet_library_noise() -> None:
    """Keep the user's log to what they can act on: drop libraries' adverts and known-harmless notes."""
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    # MLflow's advice to log models from code: our pyfunc is a small class of this package.
    logging.getLogger("mlflow.pyfunc").addFilter(_DropMessages("serialized using CloudPickle"))
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(
        _DropMessages("litlogger", "LitLogger"))
    for message in (
        r".*isinstance\(treespec, LeafSpec\)",  # lightning vs torch 2.13 pytree deprecation
        r"Checkpoint directory .* exists and is not empty",  # expected: we resume from it
        r"Sparse CSR tensor support is in beta",
        r".*does not have many workers",  # the loaders hold edge ids in memory: no workers needed
    ):
        warnings.filterwarnings("ignore", message=message)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    quiet_library_noise()
    try:
        params = check_params(load_params(args.params), args.params)
        if args.overrides:  # checked together: coupled values (split.val, split.test) change at once
            params = check_params(apply_overrides(params, args.overrides),
                                  " ".join(f"--set {override}" for override in args.overrides))
        stage = importlib.import_module(args.module)
        if hasattr(stage, "add_arguments"):
            stage.main(params, args)
        else:
            stage.main(params)
    except (InputError, ConfigError, StageError, FileNotFoundError) as error:
        print(f"blade {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: outputs land whole or not at all, so nothing to clean up
        print(f"blade {args.command}: interrupted; outputs are unchanged where the stage had not "
              "finished (re-run to resume)", file=sys.stderr)
        return 130
    except Exception as error:  # a bug or an unforeseen input: one line, the traceback on request
        if args.verbose:
            raise
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        print(f"blade {args.command}: error: {type(error).__name__}: {first} "
              f"(run `blade -v {args.command}` for the traceback)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
