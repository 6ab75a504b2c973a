"""The chart's monitoring bundle and exposure: PodMonitors, PrometheusRule, dashboard ConfigMap, and a pipeline
with an Ingress and an HTTPRoute, rendered by `helm template` and applied to the loopback cluster with the
Prometheus operator's and Gateway API's CRDs from their Go modules."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from detectflow import monitoring
from tests.chart.conftest import CHART, Helm, find
from tests.support.cluster import ClusterInfo, install_keda_crds
from tests.support.crds import install_gateway_crds, install_monitoring_crds
from tests.support.prometheus import promtool

#: Values turning on every monitoring object, and a sample pipeline exposed both ways.
VALUES: dict[str, Any] = {
    "redis": {"enabled": True, "persistence": {"enabled": False}},
    "prometheus": {
        "operator": {"podMonitor": {"enabled": True, "additionalLabels": {"release": "prometheus"}}},
        "pipelines": {"podMonitor": {"enabled": True, "interval": "15s"}},
        "prometheusRules": {"enabled": True, "additionalLabels": {"release": "prometheus"}},
    },
    "grafana": {"dashboards": {"enabled": True}},
    "pipeline": {
        "create": True,
        "spec": {
            "api": {
                "ingress": {"enabled": True, "className": "nginx", "host": "detect.example.com",
                            "tls": {"secretName": "detect-tls"}, "annotations": {"a.example/b": "c"}},
                "httpRoute": {"enabled": True, "parentRefs": [{"name": "public", "namespace": "gateways"}],
                              "hostnames": ["detect.example.com"]},
                "forwardedAllowIps": ["10.42.0.0/16"],
                "nodeSelector": {"kubernetes.io/os": "linux"},
            },
            "monitoring": {"podMonitor": {"enabled": True}},
            "workers": [{"name": "faces", "task": "face", "autoscaling": {"minReplicas": 0, "maxReplicas": 2}}],
        },
    },
}  # fmt: skip


def _template(helm: Helm, tmp_path: Path, namespace: str = "detectflow-system", release: str = "df") -> list[dict]:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(VALUES))
    out = helm("template", release, str(CHART), "--namespace", namespace, "-f", str(values)).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def test_chart_files_are_the_monitoring_bundle() -> None:
    for name in monitoring.CHART_FILES:
        assert (CHART / "files" / name).read_text() == (Path(monitoring.__file__).parent / name).read_text(), (
            "copy them: python -m detectflow.monitoring charts/detectflow"
        )


def test_chart_renders_the_monitoring_objects(helm: Helm, tmp_path: Path) -> None:
    docs = _template(helm, tmp_path)
    (rule,) = find(docs, "PrometheusRule")
    (dash,) = find(docs, "ConfigMap", "df-detectflow-dashboard")
    monitors = {d["metadata"]["name"]: d for d in find(docs, "PodMonitor")}
    (operator,) = find(docs, "Deployment", "df-detectflow-operator")
    (pipeline,) = find(docs, "DetectionPipeline")
    # The rule and the dashboard are the bundle's, the sidecar label is set, the monitors select the right pods
    assert rule["spec"] == monitoring.rules() and rule["metadata"]["labels"]["release"] == "prometheus"
    assert json.loads(dash["data"]["detectflow.json"]) == monitoring.dashboard()
    assert dash["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert set(monitors) == {"df-detectflow-operator", "df-detectflow-pipelines"}
    assert monitors["df-detectflow-pipelines"]["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/managed-by": "detectflow-operator", "app.kubernetes.io/part-of": "detectflow"}  # fmt: skip
    assert monitors["df-detectflow-pipelines"]["spec"]["namespaceSelector"] == {"any": True}
    container = operator["spec"]["template"]["spec"]["containers"][0]
    assert "--metrics-port=9464" in container["args"]
    assert {"name": "metrics", "containerPort": 9464, "protocol": "TCP"} in container["ports"]
    assert pipeline["spec"]["api"]["ingress"]["host"] == "detect.example.com"


def test_chart_prometheus_rule_passes_promtool(helm: Helm, tmp_path: Path) -> None:
    (rule,) = find(_template(helm, tmp_path), "PrometheusRule")
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    proc = promtool("check", "rules", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(monitoring.alert_expressions())} rules found" in proc.stdout


@pytest.mark.cluster
def test_chart_with_monitoring_and_exposure_applies_to_the_cluster(
    cluster: ClusterInfo, helm: Helm, namespace: str, tmp_path: Path
) -> None:
    # Given the cluster with KEDA's, the Prometheus operator's and Gateway API's CRDs from their Go modules
    install_keda_crds(cluster)
    install_monitoring_crds(cluster)
    install_gateway_crds(cluster)
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CHART / "crds"))
    release = f"dfm{uuid.uuid4().hex[:6]}"
    docs = [d for d in _template(helm, tmp_path, namespace, release)
            if "helm.sh/hook" not in d["metadata"].get("annotations", {})]  # fmt: skip
    # When every rendered object is applied (the apiserver validates each against its CRD's schema)
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(yaml.safe_dump_all(docs))
    try:
        cluster.kubectl("apply", "--server-side", "-n", namespace, "-f", str(manifest))
        # Then the monitoring objects exist as rendered, and the pipeline with ingress and route is accepted
        rule = cluster.kubectl_json("-n", namespace, "get", "prometheusrule", f"{release}-detectflow")
        monitors = cluster.kubectl_json("-n", namespace, "get", "podmonitors")["items"]
        dash = cluster.kubectl_json("-n", namespace, "get", "configmap", f"{release}-detectflow-dashboard")
        dp = cluster.kubectl_json("-n", namespace, "get", "dp", release)
    finally:
        cluster.kubectl("delete", "--ignore-not-found", "--wait=false", "-f", str(manifest), check=False)
    assert rule["spec"]["groups"] == monitoring.rules()["groups"]
    assert {m["metadata"]["name"] for m in monitors} == {f"{release}-detectflow-operator", f"{release}-detectflow-pipelines"}
    assert dash["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dp["spec"]["api"]["httpRoute"]["parentRefs"] == [{"name": "public", "namespace": "gateways"}]
    assert dp["spec"]["monitoring"]["podMonitor"]["enabled"] is True  # and its defaults filled in by the apiserver
    assert dp["spec"]["monitoring"]["podMonitor"]["interval"] == "30s"
