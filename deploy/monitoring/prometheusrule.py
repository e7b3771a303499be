"""Write the Prometheus Operator's PrometheusRule for deploy/monitoring/alerts.yml.

alerts.yml is the one source of the rules; this wraps its groups unchanged in a PrometheusRule
for the kustomize component deploy/k8s/components/monitoring. Run after editing alerts.yml:

    python deploy/monitoring/prometheusrule.py > deploy/k8s/components/monitoring/prometheusrule.yaml

(tests/integration/test_deploy.py fails if the committed file differs from this output).
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
HEADER = "# GENERATED from deploy/monitoring/alerts.yml by deploy/monitoring/prometheusrule.py: do not edit.\n"


class _Dumper(yaml.SafeDumper):
    """Multi-line expressions as literal blocks, as they read in alerts.yml."""


def _string(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|" if "\n" in data else None)


_Dumper.add_representer(str, _string)


def render(alerts: Path = HERE / "alerts.yml") -> str:
    groups = yaml.safe_load(alerts.read_text())["groups"]
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        # kube-prometheus-stack's default ruleSelector: the Helm release's name (servicemonitor.yaml).
        "metadata": {"name": "imdb-sentiment", "labels": {"release": "kube-prometheus-stack"}},
        "spec": {"groups": groups},
    }
    return HEADER + yaml.dump(rule, Dumper=_Dumper, sort_keys=False, width=120)


if __name__ == "__main__":
    sys.stdout.write(render())
