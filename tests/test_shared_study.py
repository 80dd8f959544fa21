"""Two `blade tune` workers on one Optuna study in a real PostgreSQL server (started here on
127.0.0.1 from the Debian packages; `.ci/system-packages` installs them when missing)."""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import yaml

from tests.conftest import PROJECT_ROOT, require
from tests.test_tune import tiny_tune_params

N_TRIALS = 5


def _server_binaries() -> Path | None:
    """The directory of PostgreSQL's initdb and pg_ctl (Debian keeps them off the PATH)."""
    found = shutil.which("pg_ctl")
    candidates = [found] if found else sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    return Path(os.path.realpath(candidates[0])).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[tuple[str, str]]:
    """A fresh PostgreSQL cluster on 127.0.0.1 with a password-protected user and database
    ``optuna``; yields its SQLAlchemy URL (no password: params.yaml refuses one) and the
    password, and stops the server after."""
    binaries = _server_binaries()
    require(binaries is not None, "a PostgreSQL server (initdb, pg_ctl; Debian package postgresql)")
    root = Path(tempfile.mkdtemp(prefix="blade-postgres-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root: the server runs as the postgres user
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            account = None
        require(account is not None, "the postgres system user (Debian package postgresql)")
        os.chown(root, account.pw_uid, account.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    password = "pw-" + secrets.token_hex(12)
    password_file = root / "password"
    password_file.write_text(password)
    if as_user:
        os.chown(password_file, account.pw_uid, account.pw_gid)
    data, port = root / "data", _free_port()

    def server(*command: str, **kwargs) -> None:
        subprocess.run([*as_user, *command], check=True, capture_output=True, text=True, **kwargs)

    server(str(binaries / "initdb"), "-D", str(data), "-U", "blade", "--pwfile", str(password_file),
           "--auth=scram-sha-256", "-E", "UTF8")
    server(str(binaries / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w",
           "-o", f"-h 127.0.0.1 -p {port} -k {root}", "start")
    try:
        server(str(binaries / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "blade", "optuna",
               env={**os.environ, "PGPASSWORD": password})
        yield f"postgresql+psycopg2://blade@127.0.0.1:{port}/optuna", password
    finally:
        server(str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def tiny_tune_project(tmp_path: Path) -> Path:
    """A project folder with a tiny graph ingested and a short study (n_trials 5, 2 epochs)."""
    params = tiny_tune_params(tmp_path)
    params["tune"].update({"n_trials": N_TRIALS, "study_name": "shared", "startup_trials": 2,
                           "include_defaults": True})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    for stage in ("ingest", "degree-stats"):
        subprocess.run([sys.executable, "-m", "pipeline.cli", stage], cwd=tmp_path, check=True,
                       capture_output=True, env=_environment())
    return tmp_path


def _environment(**extra: str) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    return environment | {"PYTHONPATH": str(PROJECT_ROOT), "OMP_NUM_THREADS": "1"} | extra


def test_two_workers_share_one_study_and_finish_exactly_n_trials(postgres_server, tiny_tune_project):
    project = tiny_tune_project
    postgres_url, password = postgres_server
    command = [sys.executable, "-m", "pipeline.cli", "-v", "tune", "--set", f"tune.storage={postgres_url}"]
    # libpq reads the password from PGPASSWORD; no file of the project ever holds it
    workers = [subprocess.Popen(command, cwd=project, env=_environment(PGPASSWORD=password), text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]
    logs = [worker.communicate(timeout=600)[0] for worker in workers]
    for worker, log in zip(workers, logs):
        assert worker.returncode == 0, log

    storage = optuna.storages.RDBStorage(postgres_url.replace("blade@", f"blade:{password}@"))
    (summary,) = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    finished = [trial for trial in study.trials if trial.state in (optuna.trial.TrialState.COMPLETE,
                                                                   optuna.trial.TrialState.PRUNED)]
    assert len(finished) == N_TRIALS  # together: exactly tune.n_trials, not one per worker
    assert all(trial.user_attrs.get("surplus") for trial in study.trials if trial not in finished)
    assert sum(bool(trial.user_attrs.get("defaults")) for trial in study.trials) == 1
    assert all("trial" in log for log in logs)  # both workers took part
    runs_per_worker = [log.count("tune: trial ") for log in logs]
    assert sum(runs_per_worker) >= N_TRIALS and min(runs_per_worker) >= 1, runs_per_worker
    print(f"two workers on one PostgreSQL study: {len(finished)} of tune.n_trials = {N_TRIALS} finished, "
          f"trials started per worker {runs_per_worker}, {len(study.trials) - len(finished)} surplus")

    assert password.startswith("pw-")
    for log in logs:
        assert password not in log
    written = [path for folder in ("mlruns", "outputs", "metrics") for path in (project / folder).rglob("*")
               if path.is_file()]
    assert any(path.name == "mlflow.db" for path in written)
    for path in written:
        assert password.encode() not in path.read_bytes(), path
