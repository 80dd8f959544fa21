"""A screenshot of the MLflow UI's runs page, as a new user sees it: no columns chosen, no sort.

    python bench/ui_screenshot.py                       # experiment `blade` of mlruns/ -> docs/
    python bench/ui_screenshot.py --experiment blade-compare --output docs/mlflow-compare.png

    python bench/ui_screenshot.py --view trials --output docs/mlflow-trials.png

Run it from the project's root. It starts ``mlflow ui`` on the project's store (127.0.0.1, a
free port), opens the experiment's runs page in headless Chromium (``apt-get install
chromium``) and writes the PNG whole (temp, then rename). Nothing is clicked or configured: the
page is MLflow's default view, or with ``--view`` one of the views the experiment carries
(``RUN_VIEWS`` in pipeline/tracking.py, the links ``make ui`` prints).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline import mlflow_views, tracking  # noqa: E402  (after the path: runs without an installed project)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(url: str, seconds: float = 90.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"ui_screenshot: the MLflow UI did not answer {url} within {seconds:.0f} s")


def browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    raise SystemExit("ui_screenshot: no Chromium found: apt-get install chromium")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiment", default="blade", help="experiment name (default: %(default)s)")
    parser.add_argument("--output", default="docs/mlflow-runs.png", help="PNG path (default: %(default)s)")
    parser.add_argument("--view", help="one of the experiment's views (pipeline/tracking.py RUN_VIEWS), "
                                       "e.g. trials; default: the plain runs page")
    parser.add_argument("--size", default="1600,900", help="window width,height (default: %(default)s)")
    parser.add_argument("--wait-ms", type=int, default=20000,
                        help="virtual time the page gets to load its runs (default: %(default)s)")
    args = parser.parse_args(argv)
    client = tracking.client()
    experiment = client.get_experiment_by_name(args.experiment)
    if experiment is None:
        raise SystemExit(f"ui_screenshot: no experiment {args.experiment!r} in {tracking.tracking_uri()}: "
                         "run `make run` first")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking.tracking_uri(),
         "--default-artifact-root", tracking.artifact_root() or "mlruns/artifacts",
         "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.partial.png")
    try:
        wait_for(f"http://127.0.0.1:{port}/health")
        url = mlflow_views.runs_page_url(port, args.experiment, args.view, mlflow_client=client)
        subprocess.run([browser(), "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--window-size={args.size}", f"--virtual-time-budget={args.wait_ms}",
                        f"--screenshot={partial.resolve()}", url],
                       check=True, capture_output=True, timeout=180)
        if not partial.is_file() or partial.stat().st_size < 10_000:
            raise SystemExit(f"ui_screenshot: Chromium wrote no usable screenshot of {url}")
        partial.replace(output)
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and its workers
        server.wait(timeout=30)
        partial.unlink(missing_ok=True)
    print(f"ui_screenshot: {output} ({output.stat().st_size:,} bytes) from {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
