"""A Spark standalone cluster on loopback, as ../shared/RECIPES.md starts one: a master and a
worker, each its own JVM from the pinned PySpark's `bin/spark-class`, the worker's executors in a
working directory of their own. Used by the cluster tests and benchmarks/batch.py; stopped by
process group id."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.server import free_port


def _wait_for(log: Path, text: str, proc: subprocess.Popen[bytes], seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if log.exists() and text in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    raise AssertionError(f"{text!r} not in {log}:\n{log.read_text(errors='replace')[-3000:]}")


@contextmanager
def standalone_cluster(base: Path, cores: int = 2) -> Iterator[str]:
    """spark://127.0.0.1:<port> with one worker of `cores` cores, for the duration."""
    import pyspark

    home = Path(pyspark.__file__).parent
    base.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "SPARK_HOME": str(home),
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    port = free_port()
    url = f"spark://127.0.0.1:{port}"
    spark_class = str(home / "bin/spark-class")
    procs: list[subprocess.Popen[bytes]] = []

    def start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [spark_class, *args], env=env, cwd=base, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        procs.append(proc)
        return proc

    try:
        master = start(
            ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
             "--webui-port", "0"],
            base / "master.log",
        )  # fmt: skip
        _wait_for(base / "master.log", "I have been elected leader", master)
        worker = start(
            ["org.apache.spark.deploy.worker.Worker", "--cores", str(cores), "--memory", "4g",
             "--webui-port", "0", "--work-dir", str(base / "executors"), url],
            base / "worker.log",
        )  # fmt: skip
        _wait_for(base / "worker.log", "Successfully registered with master", worker)
        yield url
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
