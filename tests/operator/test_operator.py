"""The operator on the real loopback cluster (apiserver with RBAC, controller-manager, kwok).

The operator runs as a subprocess (`detectflow operator --namespace NS`) under its own
ServiceAccount token with only the generated Role, through a proxy recording every request.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from detectflow import monitoring
from detectflow.operator.rbac import RULES
from tests.operator.conftest import ROOT, Operator, condition, wait_until
from tests.support.cluster import ClusterInfo
from tests.support.prometheus import PrometheusServer

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

EXAMPLES = sorted((ROOT / "docs" / "examples").glob("*.yaml"))
RENDER = ROOT / "tests" / "data" / "render"
INVALID = sorted(p for p in (RENDER / "input").glob("*.yaml") if not (RENDER / "output" / p.name).exists())


def _ready(kube, name: str) -> dict[str, Any] | None:
    dp = kube("get", "dp", name)
    ok = condition(dp, "Ready").get("status") == "True"
    return dp if ok and dp["status"].get("observedGeneration") == dp["metadata"]["generation"] else None


def _children(kube, name: str) -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for kind in ("deployments", "services", "serviceaccounts", "scaledobjects", "triggerauthentications"):
        for item in kube("get", kind, "-l", f"detectflow.io/pipeline={name}", "--show-managed-fields")["items"]:
            out[(item["kind"], item["metadata"]["name"])] = item
    return out


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_crd_rejects_invalid_pipeline_with_clear_message(crds: ClusterInfo, path: Path) -> None:
    # Given a spec breaking one schema bound, enum or CEL rule
    expected = path.read_text().splitlines()[0].removeprefix("# error: ").strip()
    # When it is applied (server-side dry run: validation is the same, nothing is stored)
    proc = crds.kubectl("apply", "--dry-run=server", "-f", str(path), check=False)
    # Then the apiserver refuses it and says why
    assert proc.returncode != 0, proc.stdout
    assert expected in proc.stderr, proc.stderr


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples_are_accepted_and_defaulted(crds: ClusterInfo, namespace: str, path: Path) -> None:
    proc = crds.kubectl("-n", namespace, "apply", "--dry-run=server", "-o", "json", "-f", str(path))
    stored = json.loads(proc.stdout)
    assert stored["spec"]["api"]["replicas"] >= 1  # defaults filled in by the schema
    assert all("autoscaling" in w for w in stored["spec"]["workers"])


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_scaled_objects_validate_against_keda_crd(crds: ClusterInfo, namespace: str, path: Path) -> None:
    # The rendered KEDA objects pass KEDA's own CRD schema (server-side dry run).
    rendered = subprocess.run(
        [sys.executable, "-m", "detectflow.cli.main", "operator", "render", "-f", str(path), "-n", namespace],
        capture_output=True, text=True, check=True, cwd=ROOT,
    ).stdout
    keda = [d for d in yaml.safe_load_all(rendered) if d["apiVersion"].startswith("keda.sh/")]
    assert any(d["kind"] == "ScaledObject" for d in keda)
    proc = crds.kubectl("apply", "--dry-run=server", "--validate=strict", "-f", "-", input=yaml.safe_dump_all(keda), check=False)
    assert proc.returncode == 0, proc.stderr


def test_operator_brings_example_to_ready(crds: ClusterInfo, namespace: str, operator: Operator, kube) -> None:
    # Given the cpu example applied as a user would
    crds.kubectl("-n", namespace, "apply", "-f", str(ROOT / "docs" / "examples" / "cpu.yaml"))
    # When kwok reports the pods ready, Then the pipeline turns Ready
    dp = wait_until(lambda: _ready(kube, "cpu"), "pipeline cpu Ready", operator)
    status = dp["status"]
    assert status["readyWorkers"] == "3/3"
    assert status["endpoint"] == f"http://cpu-api.{namespace}.svc:8000"
    assert {c["type"] for c in status["conditions"]} == {"Ready", "APIReady", "WorkersReady", "AutoscalingReady", "Degraded"}
    assert condition(dp, "Degraded")["status"] == "False"
    # And every child has the expected shape and is owned by the pipeline
    children = _children(kube, "cpu")
    assert set(children) == {
        ("Deployment", "cpu-api"), ("Deployment", "cpu-faces"), ("Deployment", "cpu-objects"),
        ("Deployment", "cpu-recognition"),
        ("Service", "cpu-api"), ("ServiceAccount", "cpu-api"), ("ServiceAccount", "cpu-worker"),
        ("ScaledObject", "cpu-faces"), ("ScaledObject", "cpu-objects"), ("ScaledObject", "cpu-recognition"),
    }
    for obj in children.values():
        assert obj["metadata"]["ownerReferences"][0]["uid"] == dp["metadata"]["uid"]
        assert {f["manager"] for f in obj["metadata"]["managedFields"] if f["operation"] == "Apply"} == {"detectflow-operator"}
    api = children[("Deployment", "cpu-api")]["spec"]["template"]["spec"]
    assert api["containers"][0]["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["automountServiceAccountToken"] is False
    faces = children[("ScaledObject", "cpu-faces")]["spec"]
    assert faces["triggers"][0]["metadata"]["listName"] == f"detectflow:{namespace}:cpu:detect.face.msgs"
    # And the transition was posted as an Event
    events = kube("get", "events", "--field-selector", "involvedObject.name=cpu")["items"]
    assert any(e["reason"] == "ReadyTrue" for e in events)


def test_operator_rolls_out_spec_change(crds: ClusterInfo, namespace: str, operator: Operator, kube) -> None:
    wait_until(lambda: _ready(kube, "cpu"), "pipeline cpu Ready", operator)
    # When the user raises the API replicas and a worker's concurrency
    crds.kubectl("-n", namespace, "patch", "dp", "cpu", "--type=merge", "-p", json.dumps({"spec": {"api": {"replicas": 3}}}))
    crds.kubectl(
        "-n", namespace, "patch", "dp", "cpu", "--type=json",
        "-p", json.dumps([{"op": "replace", "path": "/spec/workers/0/concurrency", "value": 5}]),
    )
    # Then the Deployments follow and the pipeline is Ready at the new generation
    dp = wait_until(lambda: _ready(kube, "cpu"), "pipeline cpu Ready after the change", operator)
    assert dp["status"]["observedGeneration"] == dp["metadata"]["generation"]
    api = kube("get", "deployment", "cpu-api")
    assert api["spec"]["replicas"] == 3 and api["status"].get("readyReplicas") == 3
    env = {e["name"]: e.get("value") for e in kube("get", "deployment", "cpu-faces")["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["DETECTFLOW_WORKER_THREADS"] == env["dramatiq_queue_prefetch"] == "5"
    assert kube("get", "scaledobject", "cpu-faces")["spec"]["triggers"][0]["metadata"]["listLength"] == "5"


def test_operator_repairs_deleted_and_edited_children(crds: ClusterInfo, namespace: str, operator: Operator, kube) -> None:
    old_uid = kube("get", "service", "cpu-api")["metadata"]["uid"]
    # When someone deletes the Service and hand-edits a ScaledObject the operator owns
    crds.kubectl("-n", namespace, "delete", "service", "cpu-api")
    crds.kubectl("-n", namespace, "patch", "scaledobject", "cpu-objects", "--type=merge", "-p", '{"spec":{"maxReplicaCount":99}}')
    # Then both are put back
    wait_until(
        lambda: crds.kubectl("-n", namespace, "get", "service", "cpu-api", check=False).returncode == 0
        and kube("get", "service", "cpu-api")["metadata"]["uid"] != old_uid,
        "Service cpu-api recreated", operator,
    )
    wait_until(lambda: kube("get", "scaledobject", "cpu-objects")["spec"]["maxReplicaCount"] == 4, "ScaledObject repaired", operator)


def test_operator_prunes_removed_worker(crds: ClusterInfo, namespace: str, operator: Operator, kube) -> None:
    # When the objects worker is removed from the spec
    crds.kubectl(
        "-n", namespace, "patch", "dp", "cpu", "--type=json",
        "-p", json.dumps([{"op": "remove", "path": "/spec/workers/1"}]),
    )
    # Then its Deployment and ScaledObject are deleted, the rest stays
    wait_until(lambda: ("Deployment", "cpu-objects") not in _children(kube, "cpu") and ("ScaledObject", "cpu-objects") not in _children(kube, "cpu"), "cpu-objects pruned", operator)
    assert ("Deployment", "cpu-faces") in _children(kube, "cpu")
    dp = wait_until(lambda: _ready(kube, "cpu"), "pipeline cpu Ready with the two workers left", operator)
    assert dp["status"]["readyWorkers"] == "2/2"


def test_operator_reports_missing_secret_then_recovers(crds: ClusterInfo, namespace: str, operator: Operator, kube) -> None:
    # Given the gpu example, whose Redis password Secret does not exist yet
    crds.kubectl("-n", namespace, "apply", "-f", str(ROOT / "docs" / "examples" / "gpu.yaml"))
    # Then the pipeline says why it is not served, without crash-looping
    dp = wait_until(lambda: (d := kube("get", "dp", "gpu")) and condition(d, "Degraded").get("reason") == "SecretNotFound" and d, "SecretNotFound", operator)
    assert "redis-auth" in condition(dp, "Degraded")["message"]
    assert condition(dp, "Ready")["status"] == "False"
    auth = kube("get", "triggerauthentication", "gpu-redis")
    assert auth["spec"]["secretTargetRef"] == [{"parameter": "password", "name": "redis-auth", "key": "password"}]
    gpu = kube("get", "deployment", "gpu-objects-gpu")["spec"]["template"]["spec"]
    assert gpu["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    # When the Secret is created without the detectflow label, Then the operator does not use it
    crds.kubectl("-n", namespace, "create", "secret", "generic", "redis-auth", "--from-literal=password=s3cret")
    dp = wait_until(lambda: (d := kube("get", "dp", "gpu")) and condition(d, "Degraded").get("reason") == "SecretNotLabelled" and d, "SecretNotLabelled", operator)
    assert "redis-auth" in condition(dp, "Degraded")["message"] and condition(dp, "Ready")["status"] == "False"
    # When it is labelled, Then the problem clears and the GPU worker lands on the GPU node
    crds.kubectl("-n", namespace, "label", "secret", "redis-auth", "detectflow.io/secret=true")
    wait_until(lambda: condition(kube("get", "dp", "gpu"), "Degraded").get("status") == "False", "Degraded False", operator)
    wait_until(lambda: _ready(kube, "gpu"), "pipeline gpu Ready", operator)
    pods = kube("get", "pods", "-l", "detectflow.io/worker=objects-gpu")["items"]
    assert pods and all(p["spec"]["nodeName"] == "kwok-gpu-0" for p in pods)
    # When the password is dropped from the spec, Then its TriggerAuthentication is pruned
    crds.kubectl(
        "-n", namespace, "patch", "dp", "gpu", "--type=json",
        "-p", json.dumps([{"op": "remove", "path": "/spec/redis/passwordSecretRef"}]),
    )
    wait_until(lambda: ("TriggerAuthentication", "gpu-redis") not in _children(kube, "gpu"), "gpu-redis pruned", operator)
    so = kube("get", "scaledobject", "gpu-faces")
    assert all("authenticationRef" not in t for t in so["spec"]["triggers"])


def test_operator_reads_queue_depth_from_redis(crds: ClusterInfo, namespace: str, operator: Operator, kube, redis_server) -> None:
    # Given a pipeline on the test's real Redis with three unfinished face jobs
    client = redis.Redis.from_url(redis_server.url)
    kwargs = client.connection_pool.connection_kwargs
    client.hset(f"detectflow:{namespace}:depth:detect.face.msgs", mapping={"a": "1", "b": "2", "c": "3"})
    manifest = {
        "apiVersion": "detectflow.io/v1alpha1", "kind": "DetectionPipeline",
        "metadata": {"name": "depth", "namespace": namespace},
        "spec": {"redis": {"address": f"{kwargs['host']}:{kwargs['port']}"}, "workers": [{"name": "faces", "task": "face"}, {"name": "objects", "task": "object"}]},
    }
    crds.apply(json.dumps(manifest))
    # Then status shows the depth per worker and in total (the QUEUE column)
    dp = wait_until(lambda: (d := kube("get", "dp", "depth")).get("status", {}).get("queueDepth") == 3 and d, "queueDepth 3", operator)
    assert {w["name"]: w.get("queueDepth") for w in dp["status"]["workers"]} == {"faces": 3, "objects": 0}
    table = crds.kubectl("-n", namespace, "get", "dp", "depth").stdout
    assert table.split()[:5] == ["NAME", "READY", "WORKERS", "QUEUE", "AGE"]


def test_operator_restart_converges_without_duplicates(crds: ClusterInfo, namespace: str, operator: Operator, kube) -> None:
    wait_until(lambda: _ready(kube, "cpu"), "pipeline cpu Ready", operator)
    before = {k: (v["metadata"]["uid"], v["metadata"]["resourceVersion"]) for k, v in _children(kube, "cpu").items()}
    # When the operator restarts (and resyncs a few times)
    operator.stop()
    operator.start()
    log = operator.logs[-1]
    wait_until(lambda: log.read_text().count("Timer 'resync' succeeded") >= 3, "three resyncs after restart", operator)
    # Then it re-applies the same objects: nothing is duplicated, recreated or even rewritten
    after = {k: (v["metadata"]["uid"], v["metadata"]["resourceVersion"]) for k, v in _children(kube, "cpu").items()}
    changed = {k for k in before if before[k][1] != after.get(k, ("", ""))[1] and k[0] != "Deployment"}
    assert set(after) == set(before)
    assert {k: v[0] for k, v in after.items()} == {k: v[0] for k, v in before.items()}
    assert not changed, changed
    assert _ready(kube, "cpu")


def test_operator_leaves_an_unowned_child_alone_with_conflict(crds: ClusterInfo, namespace: str, operator: Operator, kube) -> None:
    # Given an unrelated Deployment x-api that someone else made
    crds.kubectl("-n", namespace, "create", "deployment", "x-api", "--image=example.com/theirs:1", "--replicas=0")
    before = kube("get", "deployment", "x-api")
    # When a pipeline named x (whose API Deployment would be x-api) is created, with a PDB and a NetworkPolicy
    manifest = {
        "apiVersion": "detectflow.io/v1alpha1", "kind": "DetectionPipeline",
        "metadata": {"name": "x", "namespace": namespace},
        "spec": {
            "redis": {"address": "redis:6379"}, "workers": [{"name": "faces", "task": "face"}],
            "api": {"podDisruptionBudget": {"minAvailable": 1}}, "networkPolicy": {"enabled": True},
        },
    }
    crds.apply(json.dumps(manifest))
    # Then the pipeline says Conflict naming the object, and the object is untouched
    dp = wait_until(lambda: (d := kube("get", "dp", "x")) and condition(d, "Degraded").get("reason") == "Conflict" and d, "Conflict", operator)
    assert "Deployment x-api" in condition(dp, "Degraded")["message"]
    assert condition(dp, "Ready")["status"] == "False" and condition(dp, "Ready")["reason"] == "Conflict"
    after = kube("get", "deployment", "x-api")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert "ownerReferences" not in after["metadata"]
    assert after["spec"]["template"]["spec"]["containers"][0]["image"] == "example.com/theirs:1"
    # The other children were applied, the PDB and NetworkPolicy among them
    uid = dp["metadata"]["uid"]
    for kind in ("poddisruptionbudget", "networkpolicy", "service"):
        assert kube("get", kind, "x-api")["metadata"]["ownerReferences"][0]["uid"] == uid
    # When the other Deployment goes away and the PDB and NetworkPolicy are turned off
    crds.kubectl("-n", namespace, "delete", "deployment", "x-api")
    crds.kubectl(
        "-n", namespace, "patch", "dp", "x", "--type=merge",
        "-p", json.dumps({"spec": {"api": {"podDisruptionBudget": {"minAvailable": None}}, "networkPolicy": {"enabled": False}}}),
    )
    # Then the pipeline takes its place and prunes the PDB and NetworkPolicy
    wait_until(lambda: _ready(kube, "x"), "pipeline x Ready", operator)
    assert kube("get", "deployment", "x-api")["metadata"]["ownerReferences"][0]["uid"] == uid
    for kind in ("poddisruptionbudget", "networkpolicy"):
        wait_until(lambda: crds.kubectl("-n", namespace, "get", kind, "x-api", check=False).returncode != 0, f"{kind} pruned", operator)


@pytest.mark.prometheus
def test_operator_exposes_and_monitors_a_pipeline(
    crds: ClusterInfo, namespace: str, operator: Operator, kube, tmp_path: Path
) -> None:
    # Given a pipeline with an Ingress (TLS), an HTTPRoute and a PodMonitor
    manifest = {
        "apiVersion": "detectflow.io/v1alpha1", "kind": "DetectionPipeline",
        "metadata": {"name": "pub", "namespace": namespace},
        "spec": {
            "redis": {"address": "redis:6379"}, "workers": [{"name": "faces", "task": "face"}],
            "api": {
                "ingress": {"enabled": True, "className": "nginx", "host": "detect.example.com",
                            "tls": {"secretName": "detect-tls"}},
                "httpRoute": {"enabled": True, "parentRefs": [{"name": "public"}], "hostnames": ["detect.example.com"]},
                "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "api", "effect": "NoSchedule"}],
            },
            "monitoring": {"podMonitor": {"enabled": True}},
        },
    }  # fmt: skip
    crds.apply(json.dumps(manifest))
    # When the operator reconciles it, Then it applies the three, owned by the pipeline
    ingress = wait_until(lambda: _get(crds, namespace, "ingress", "pub-api"), "Ingress pub-api", operator)
    route = wait_until(lambda: _get(crds, namespace, "httproute", "pub-api"), "HTTPRoute pub-api", operator)
    monitor = wait_until(lambda: _get(crds, namespace, "podmonitor", "pub"), "PodMonitor pub", operator)
    dp = wait_until(lambda: _ready(kube, "pub"), "pipeline pub Ready", operator)
    uid = dp["metadata"]["uid"]
    assert all(o["metadata"]["ownerReferences"][0]["uid"] == uid for o in (ingress, route, monitor))
    assert ingress["spec"]["tls"] == [{"hosts": ["detect.example.com"], "secretName": "detect-tls"}]
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == "pub-api"
    assert route["spec"]["rules"][0]["backendRefs"][0]["name"] == "pub-api"
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    # and the public URL (from the Ingress) reaches the API and the workers, the tolerations the API pods
    env = lambda d: {e["name"]: e.get("value") for e in d["spec"]["template"]["spec"]["containers"][0]["env"]}  # noqa: E731
    api, faces = kube("get", "deployment", "pub-api"), kube("get", "deployment", "pub-faces")
    assert env(api)["DETECTFLOW_API_PUBLIC_URL"] == env(faces)["DETECTFLOW_API_PUBLIC_URL"] == "https://detect.example.com"
    assert api["spec"]["template"]["spec"]["tolerations"][0]["key"] == "dedicated"

    # And the operator's own metrics, scraped by a real Prometheus, carry what the rules and the dashboard read
    rules = tmp_path / "rules.yaml"
    rules.write_text(monitoring.rules_text())
    with PrometheusServer(tmp_path / "prom", [f"127.0.0.1:{operator.metrics_port}"], rule_files=[str(rules)]) as prom:
        ready = prom.wait_for_series('detectflow_operator_pipeline_condition{pipeline="pub",type="Ready"} == 1')
        prom.wait_for_series('detectflow_operator_reconciles_total{trigger="resync",outcome="ok"}')
        names = set(prom.api("label/__name__/values"))
        alert = wait_until(lambda: _rule(prom, "DetectflowPipelineNotReady"), "the Ready rule evaluated")
    used = set().union(*map(monitoring.metric_names, [*monitoring.alert_expressions().values(),
                                                       *monitoring.dashboard_expressions().values()]))  # fmt: skip
    assert {n for n in used if n.startswith("detectflow_operator_")} <= names
    assert ready[0]["metric"]["namespace"] == namespace
    assert alert["health"] == "ok" and alert["state"] == "inactive"

    # When exposure and scraping are turned off, Then the three are pruned
    crds.kubectl("-n", namespace, "patch", "dp", "pub", "--type=merge", "-p", json.dumps(
        {"spec": {"api": {"ingress": {"enabled": False}, "httpRoute": {"enabled": False}},
                  "monitoring": {"podMonitor": {"enabled": False}}}}))  # fmt: skip
    for kind, name in (("ingress", "pub-api"), ("httproute", "pub-api"), ("podmonitor", "pub")):
        wait_until(lambda: _get(crds, namespace, kind, name) is None, f"{kind} {name} pruned", operator)


def _get(cluster: ClusterInfo, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
    proc = cluster.kubectl("-n", namespace, "get", kind, name, "-o", "json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def _rule(prom: PrometheusServer, name: str) -> dict[str, Any] | None:
    found = [r for g in prom.api("rules")["groups"] for r in g["rules"] if r["name"] == name]
    return found[0] if found and found[0].get("health") in ("ok", "err") else None


def test_operator_uses_exactly_its_rbac(operator: Operator) -> None:
    # No request was refused (no missing rule) ...
    assert operator.recorder.forbidden() == [], operator.recorder.forbidden()
    # ... and every granted verb on every resource was needed by some request (no excess rule).
    used = operator.recorder.used()
    granted = {(g, r, v) for rule in RULES for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    assert used <= granted, used - granted
    assert granted - used == set(), f"granted but never used: {sorted(granted - used)}"


def test_deleting_pipeline_garbage_collects_children(crds: ClusterInfo, namespace: str, operator: Operator, kube) -> None:
    assert _children(kube, "cpu")
    crds.kubectl("-n", namespace, "delete", "dp", "cpu", "--wait=true", "--timeout=60s")
    wait_until(lambda: not _children(kube, "cpu"), "children of cpu garbage-collected", operator)
    assert "Traceback" not in operator.output()
