"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.spark_cluster import standalone_cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """spark://127.0.0.1:<port>: one master, one worker with 2 cores, separate JVMs; one per
    test module."""
    from tests.integration.test_batch_engines import require_pyspark

    require_pyspark()
    with standalone_cluster(tmp_path_factory.mktemp("spark-cluster")) as url:
        yield url
