"""The database roles exactly as docs/operations.md provisions them, on a real PostgreSQL server:
the migration Job's command as the migration role, a real service (gunicorn) as the service
role — ready (it reads alembic_version), predicting, taking feedback, running retention (it
updates store_tasks) — and the read-only commands as the read-only role; each refused what its
role must not do. And the connection budget the docs state, derived from the manifests."""

from __future__ import annotations

import re
import secrets
import subprocess
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError

from harness.postgres import PostgresServer
from harness.project import ROOT, run
from harness.server import Pod
from imdb_sentiment.monitoring.shadow import live_counts
from imdb_sentiment.serving.service_settings import load_settings
from imdb_sentiment.store.database import PredictionStore
from tests.integration.test_deploy import render
from tests.unit.serving.test_live_model import publish

pytestmark = pytest.mark.slow
DOCS = ROOT / "docs/operations.md"


def provisioning_sql() -> str:
    text_ = DOCS.read_text()
    section = text_.split("**Provisioning (PostgreSQL): database roles.**", 1)[1]
    found = re.search(r"```sql\n(.*?)```", section, re.S)
    assert found, "docs/operations.md shows the roles' SQL"
    return found[1]


def role_url(admin_url: str, role: str, password: str) -> str:
    url = make_url(admin_url).set(username=role, password=password)
    return url.render_as_string(hide_password=False)


def test_the_documented_roles_run_the_job_the_service_and_the_readers(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    admin = postgres.new_database()
    database = make_url(admin).database
    sql = provisioning_sql().replace("DATABASE imdb ", f'DATABASE "{database}" ')
    variables = dict(re.findall(r"CREATE ROLE (\w+) LOGIN PASSWORD :'(\w+)'", sql))
    assert set(variables) == {"imdb_migrator", "imdb_service", "imdb_readonly"}
    passwords = {role: f"{name}-{secrets.token_hex(4)}" for role, name in variables.items()}
    for role in variables:  # roles are the server's: a fresh name per test database
        sql = sql.replace(role, f"{role}_{database}")
    script = tmp_path / "roles.sql"
    script.write_text(sql)
    # As the docs say: psql, the passwords as variables, stopping at the first error.
    psql = [str(postgres.bindir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
            "-h", "127.0.0.1", "-p", str(postgres.port), "-U", "postgres", "-d", str(database),
            *(f"-v{name}={passwords[role]}" for role, name in variables.items()),
            "-f", str(script)]  # fmt: skip
    subprocess.run(psql, check=True, capture_output=True, text=True)
    urls = {role: role_url(admin, f"{role}_{database}", password)
            for role, password in passwords.items()}  # fmt: skip
    # pg_hba is `trust` on the test server: the roles' rights, not their passwords, are tested.

    job = next(d for d in render("prod") if d["kind"] == "Job")
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    done = run(command, ROOT, {"DATABASE_URL": urls["imdb_migrator"]})
    assert "schema at revision" in done.stdout

    publish(seed=1)
    pod = Pod(tmp_path / "pod", {"DATABASE_URL": urls["imdb_service"], "DATABASE_MIGRATE": "off",
                                 "PREDICTION_LOG_RATE": "0"})  # fmt: skip
    pod.start()  # ready: it read alembic_version
    try:
        answer = requests.post(f"{pod.url}/api/v1/predict", json={"text": "Superb."}, timeout=10)
        rid = answer.headers["X-Request-ID"]
        deadline = time.monotonic() + 20
        while (label := requests.post(f"{pod.url}/api/v1/feedback", timeout=10,
                                      json={"request_id": rid, "label": "positive"})
               ).status_code != 201:  # fmt: skip
            assert label.status_code in (404, 503) and time.monotonic() < deadline, label.text
            time.sleep(0.3)
        ready = requests.get(f"{pod.url}/readyz", timeout=5).json()
        assert ready["store"]["schema"] == "current"
    finally:
        pod.stop()
    service = PredictionStore(urls["imdb_service"], retention_hours=1.0)
    with service.engine.connect() as db:  # the pod's flusher claimed retention's interval
        assert db.execute(text("SELECT last_run FROM store_tasks")).scalar_one() > 0
    assert service.prune() == 0  # and may delete
    readonly = PredictionStore(urls["imdb_readonly"])
    assert [r.request_id for r in readonly.records()] == [rid]
    assert live_counts(urls["imdb_readonly"], "2", "1").pairs == 0

    refused = {
        "imdb_service": "CREATE TABLE not_yours (x int)",
        "imdb_readonly": "DELETE FROM predictions",
    }
    for role, statement in refused.items():
        engine = create_engine(urls[role])
        with pytest.raises(ProgrammingError, match="permission denied"), engine.begin() as db:
            db.execute(text(statement))
        engine.dispose()


def test_the_connection_budget_the_docs_state_is_the_manifests() -> None:
    docs = render("prod")
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
    hpa = next(d for d in docs if d["kind"] == "HorizontalPodAutoscaler")["spec"]
    settings = load_settings(workers=int(config["WORKERS"]), grpc_port=int(config["GRPC_PORT"]),
                             model_sync="sidecar")  # fmt: skip
    engine = (ROOT / "src/imdb_sentiment/store/engine.py").read_text()
    pool = int(re.search(r"pool_size: int = (\d+)", engine)[1])  # type: ignore[index]
    overflow = int(re.search(r"max_overflow=(\d+)", engine)[1])  # type: ignore[index]
    budget = settings.service.spool_processes * (pool + overflow) * int(hpa["maxReplicas"])
    assert f"at most {budget}," in DOCS.read_text()
    assert (
        settings.service.spool_processes == settings.service.workers + settings.service.grpc_workers
    )
