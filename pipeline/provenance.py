"""Provenance of a run: the git commit, the DVC data version, the machine, the result-code digest,
and URLs with their secrets redacted before they are logged anywhere."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch
import yaml

from pipeline.passwords import PASSWORD_QUERY_KEYS


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def data_version(dvc_file: Path = Path("data.dvc")) -> str:
    """The DVC hash of the raw data (``md5`` of ``data.dvc``'s output), or ``unknown``."""
    try:
        outs = yaml.safe_load(dvc_file.read_text())["outs"]
        return str(outs[0]["md5"])
    except (OSError, KeyError, IndexError, TypeError, yaml.YAMLError):
        return "unknown"


def cpu_model() -> str:
    """The processor's name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def environment() -> dict[str, Any]:
    """What a run ran on: versions, hardware, commit, data version."""
    versions = {}
    for package in ("torch", "pytorch-lightning", "torch-geometric", "mlflow", "optuna", "onnxruntime-gpu",
                    "onnxruntime", "numpy", "dvc"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_gib": memory_gib(),
        "torch_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "git_commit": git_commit(),
        "data_version": data_version(),
        "packages": versions,
    }


def redact_url(url: str) -> str:
    """A storage URL with its password replaced by ``***`` (``postgresql://user:***@host/db``,
    ``...?password=***``), for everything that is logged, tagged or written; other URLs and
    paths are unchanged. params.yaml refuses passwords in URLs (:func:`pipeline.passwords.url_password`):
    this is the second line, for URLs that come from elsewhere."""
    from urllib.parse import parse_qsl, quote

    scheme, separator, rest = str(url).partition("://")
    if not separator:
        return str(url)
    location, question, query = rest.partition("?")
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = "&".join(f"{quote(key)}={'***' if key.lower() in PASSWORD_QUERY_KEYS else quote(value)}"
                         for key, value in pairs)
    if not scheme.startswith("sqlite"):
        credentials, at, host = location.rpartition("@")
        if at and ":" in credentials:
            location = f"{credentials.split(':', 1)[0]}:***@{host}"
    return f"{scheme}://{location}{question}{query}"


def config_digest(values: Any) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:12]


# The code a trained result depends on: a change to any of it starts a new Optuna study and
# re-runs `blade compare`'s seeds instead of re-using results of the old code.
RESULT_CODE = ("models/*.py", "pipeline/train.py", "pipeline/fitting.py", "pipeline/evaluate.py",
               "pipeline/ingest.py", "pipeline/edges.py", "pipeline/readers.py", "pipeline/input_files.py",
               "pipeline/artifacts.py", "pipeline/tune.py",
               "pipeline/study.py")


PROJECT_ROOT = Path(__file__).resolve().parent.parent


def code_digest(root: Path = PROJECT_ROOT) -> str:
    digest = hashlib.md5()
    for pattern in RESULT_CODE:
        for path in sorted(root.glob(pattern)):
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]
