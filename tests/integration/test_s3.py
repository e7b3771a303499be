"""S3 as a dataset source and as a DVC remote, against moto's S3 server on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import requests

from harness.project import make_project, run
from harness.server import free_port
from tests.helpers import review_files, write_archive

pytestmark = pytest.mark.slow
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = free_port()
    server = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen(
        [str(server), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                requests.get(endpoint, timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {**CREDENTIALS, "AWS_ENDPOINT_URL": s3_endpoint}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def test_ingest_reads_the_dataset_from_s3(tmp_path: Path, s3_env: dict[str, str]) -> None:
    from imdb_sentiment.pipeline.data.source import resolve_source

    archive = write_archive(tmp_path / "aclImdb_v1.tar.gz", review_files(per_label=5))
    s3 = boto3.client("s3", endpoint_url=s3_env["AWS_ENDPOINT_URL"])
    s3.create_bucket(Bucket="datasets")
    s3.upload_file(str(archive), "datasets", "imdb/aclImdb_v1.tar.gz")

    local = resolve_source("s3://datasets/imdb/aclImdb_v1.tar.gz", tmp_path / "cache")
    assert local.read_bytes() == archive.read_bytes()

    from imdb_sentiment.core.errors import DataError

    with pytest.raises(DataError, match="cannot download"):
        resolve_source("s3://datasets/imdb/missing.tar.gz", tmp_path / "cache")


def test_a_labelled_table_is_ingested_from_s3(tmp_path: Path, s3_env: dict[str, str]) -> None:
    """A team's own CSV in a bucket: the same loader as a local file, format from the key."""
    import pandas as pd

    from imdb_sentiment.core.config import DataParams
    from imdb_sentiment.pipeline.data.ingest import load_sources

    texts = [f"Review {i}: {'great' if i % 2 else 'awful'} film number {i}." for i in range(20)]
    labels = ["pos" if i % 2 else "neg" for i in range(20)]
    csv = tmp_path / "reviews.csv.gz"
    pd.DataFrame({"review": texts, "sentiment": labels}).to_csv(csv, index=False)
    s3 = boto3.client("s3", endpoint_url=s3_env["AWS_ENDPOINT_URL"])
    s3.create_bucket(Bucket="team-data")
    s3.upload_file(str(csv), "team-data", "labelled/reviews.csv.gz")

    p = DataParams(source="s3://team-data/labelled/reviews.csv.gz", split="random",
                   cache_dir=str(tmp_path / "cache"), expected_per_label=None)  # fmt: skip
    train, test, provenance = load_sources(p)
    assert sorted([*train.text, *test.text]) == sorted(texts)
    assert provenance["sources"][0]["format"] == "csv"
    assert provenance["sources"][0]["uri"] == p.source


def test_dvc_push_and_pull_through_an_s3_remote(tmp_path: Path, s3_env: dict[str, str]) -> None:
    boto3.client("s3", endpoint_url=s3_env["AWS_ENDPOINT_URL"]).create_bucket(Bucket="dvc-store")
    project = make_project(tmp_path / "project")
    data = project / "data" / "sample.txt"
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_text("tracked by dvc\n")
    env = {**s3_env, "HOME": str(tmp_path)}
    run(["dvc", "add", "data/sample.txt"], project, env)
    run(["dvc", "remote", "add", "-f", "-d", "s3", "s3://dvc-store/imdb"], project, env)
    run(["dvc", "remote", "modify", "s3", "endpointurl", s3_env["AWS_ENDPOINT_URL"]], project, env)
    run(["dvc", "push", "-r", "s3", "data/sample.txt.dvc"], project, env)
    listed = boto3.client("s3", endpoint_url=s3_env["AWS_ENDPOINT_URL"]).list_objects_v2(
        Bucket="dvc-store"
    )
    assert listed.get("KeyCount", 0) >= 1

    data.unlink()
    run(["dvc", "cache", "dir", "--local", str(tmp_path / "fresh-cache")], project, env)
    run(["dvc", "pull", "-r", "s3", "data/sample.txt.dvc"], project, env)
    assert data.read_text() == "tracked by dvc\n"
    assert os.environ["AWS_ENDPOINT_URL"] == s3_env["AWS_ENDPOINT_URL"]
