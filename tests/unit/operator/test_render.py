"""Golden and property tests of operator/render.py (pure: no cluster)."""

from __future__ import annotations

import os
from pathlib import Path

import pydantic
import pytest
import yaml

from detectflow.operator.crd import DetectionPipeline, WorkerSpec, dump_yaml
from detectflow.operator.render import (
    child_name,
    public_url,
    redis_target,
    render_all,
    render_scaled_object,
    render_worker_deployment,
    owner_reference,
    target_per_replica,
    worker_concurrency,
)
from tests.unit.operator.conftest import DATA, INVALID, VALID, expected_error, load

REDIS = {"address": "redis:6379"}


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_render_all_matches_golden(path: Path) -> None:
    # Given a pipeline as the API server hands it over
    pipeline = DetectionPipeline.from_body(load(path))
    # When it is rendered
    text = dump_yaml(*render_all(pipeline))
    # Then the manifests equal the reviewed golden file
    golden = DATA / "output" / path.name
    if os.environ.get("DETECTFLOW_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text(), f"regenerate with DETECTFLOW_UPDATE_GOLDEN=1 and review {golden}"


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_render_invalid_input_is_rejected(path: Path) -> None:
    # The same inputs are applied to the real apiserver in tests/operator; here the models
    # (which mirror every CEL rule in Python) must refuse them too.
    message = expected_error(path)
    with pytest.raises(pydantic.ValidationError) as excinfo:
        DetectionPipeline.from_body(load(path))
    if "must" in message or "only" in message or "set exactly" in message or "reserved" in message:
        assert message in str(excinfo.value)


def test_render_all_is_deterministic(make_pipeline) -> None:
    spec = {"redis": REDIS, "workers": [{"name": "b", "task": "object"}, {"name": "a", "task": "face"}]}
    first = dump_yaml(*render_all(make_pipeline(spec)))
    assert first == dump_yaml(*render_all(make_pipeline(spec)))
    names = [(m["kind"], m["metadata"]["name"]) for m in render_all(make_pipeline(spec))]
    assert names == [
        ("ServiceAccount", "demo-api"),
        ("ServiceAccount", "demo-worker"),
        ("Service", "demo-api"),
        ("Deployment", "demo-a"),
        ("Deployment", "demo-api"),
        ("Deployment", "demo-b"),
        ("ScaledObject", "demo-a"),
        ("ScaledObject", "demo-b"),
    ]


def test_child_name_trims_to_63_and_keeps_long_names_distinct() -> None:
    a = child_name("p" * 40, "w" * 40)
    b = child_name("p" * 40, "w" * 39 + "x")
    assert len(a) == len(b) == 63
    assert a != b
    assert child_name("demo", "api") == "demo-api"


def test_render_all_labels_and_owner_on_every_child(make_pipeline) -> None:
    pipeline = make_pipeline({"redis": REDIS, "workers": [{"name": "f", "task": "face"}]})
    for manifest in render_all(pipeline):
        labels = manifest["metadata"]["labels"]
        for key in ("name", "instance", "component", "part-of", "managed-by"):
            assert f"app.kubernetes.io/{key}" in labels
        assert labels["detectflow.io/pipeline"] == "demo"
        assert manifest["metadata"]["ownerReferences"] == [owner_reference(pipeline)]


def test_render_all_without_uid_has_no_owner(make_pipeline) -> None:
    pipeline = make_pipeline({"redis": REDIS, "workers": [{"name": "f", "task": "face"}]}, uid="")
    assert all("ownerReferences" not in m["metadata"] for m in render_all(pipeline))


def test_scaled_object_watches_unfinished_and_delayed_work(make_pipeline) -> None:
    pipeline = make_pipeline(
        {"redis": {"url": "redis://r:6379/2"}, "workers": [{"name": "f", "task": "face", "concurrency": 3}]}
    )
    so = render_scaled_object(pipeline, pipeline.spec.workers[0], owner_reference(pipeline))
    triggers = {t["name"]: t["metadata"] for t in so["spec"]["triggers"]}
    assert triggers["unfinished"]["listName"] == "detectflow:ns:demo:detect.face.msgs"
    assert triggers["delayed"]["listName"] == "detectflow:ns:demo:detect.face.DQ.msgs"
    for metadata in triggers.values():
        assert all(isinstance(v, str) for v in metadata.values())
        assert metadata["listLength"] == "3"  # concurrency when targetPerReplica is unset
        assert metadata["activationListLength"] == "0"
        assert metadata["databaseIndex"] == "2"
    assert so["spec"]["advanced"]["scalingModifiers"]["formula"] == "unfinished + delayed"
    assert "authenticationRef" not in so["spec"]["triggers"][0]


def test_scaled_object_uses_trigger_authentication_for_password(make_pipeline) -> None:
    pipeline = make_pipeline(
        {
            "redis": {**REDIS, "passwordSecretRef": {"name": "redis-auth"}},
            "workers": [{"name": "f", "task": "face"}],
        }
    )
    manifests = render_all(pipeline)
    auth = next(m for m in manifests if m["kind"] == "TriggerAuthentication")
    assert auth["spec"]["secretTargetRef"] == [{"parameter": "password", "name": "redis-auth", "key": "password"}]
    so = next(m for m in manifests if m["kind"] == "ScaledObject")
    assert all(t["authenticationRef"] == {"name": "demo-redis"} for t in so["spec"]["triggers"])
    assert all("password" not in t["metadata"] for t in so["spec"]["triggers"])


def test_worker_deployment_outlives_its_longest_job(make_pipeline) -> None:
    pipeline = make_pipeline(
        {"redis": REDIS, "workers": [{"name": "f", "task": "face", "timeLimitSeconds": 600, "concurrency": 4}]}
    )
    dep = render_worker_deployment(pipeline, pipeline.spec.workers[0], owner_reference(pipeline))
    pod = dep["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert pod["terminationGracePeriodSeconds"] > 600
    assert env["dramatiq_queue_prefetch"] == env["DETECTFLOW_WORKER_THREADS"] == "4"
    assert "replicas" not in dep["spec"]  # KEDA owns the replica count
    assert pod["automountServiceAccountToken"] is False


def test_worker_deployment_gpu_gets_limit_image_and_toleration(make_pipeline) -> None:
    pipeline = make_pipeline({"redis": REDIS, "workers": [{"name": "g", "task": "object", "device": "gpu"}]})
    pod = render_worker_deployment(pipeline, pipeline.spec.workers[0], owner_reference(pipeline))["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["image"].startswith("detectflow/worker-gpu:")
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["DETECTFLOW_DEVICE"] == "gpu"


@pytest.mark.parametrize(
    ("redis", "expected"),
    [
        ({"address": "redis:6379"}, ("redis", 6379, 0, False, "redis://redis:6379/0")),
        ({"address": "10.0.0.1:7000", "database": 4, "tls": True}, ("10.0.0.1", 7000, 4, True, "rediss://10.0.0.1:7000/4")),
        ({"url": "redis://r"}, ("r", 6379, 0, False, "redis://r:6379/0")),
        ({"url": "rediss://u@r:6380/9"}, ("r", 6380, 9, True, "rediss://u@r:6380/9")),
    ],
)
def test_redis_target_resolves_address_and_url(make_pipeline, redis, expected) -> None:
    target = redis_target(make_pipeline({"redis": redis, "workers": [{"name": "f", "task": "face"}]}).spec.redis)
    assert (target.host, target.port, target.database, target.tls, target.url) == expected


def test_render_cli_prints_the_same_manifests(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from detectflow.cli.operator import app

    example = DATA.parents[2] / "docs" / "examples" / "cpu.yaml"
    result = CliRunner().invoke(app, ["render", "-f", str(example)])
    assert result.exit_code == 0, result.output
    docs = list(yaml.safe_load_all(result.output))
    assert {d["kind"] for d in docs} == {"ServiceAccount", "Service", "Deployment", "ScaledObject"}


def test_render_secrets_are_secret_key_refs_never_literals(make_pipeline) -> None:
    spec = {
        "redis": REDIS,
        "api": {"auth": {"adminKeySecretRef": {"name": "admin", "key": "admin-key"}}},
        "webhooks": {"secretRef": {"name": "hooks", "key": "secret"}},
        "workers": [{"name": "a", "task": "face"}],
    }
    docs = {(m["kind"], m["metadata"]["name"]): m for m in render_all(make_pipeline(spec))}
    api = docs[("Deployment", "demo-api")]["spec"]["template"]["spec"]["containers"][0]
    worker = docs[("Deployment", "demo-a")]["spec"]["template"]["spec"]["containers"][0]
    api_env = {e["name"]: e for e in api["env"]}
    assert api_env["DETECTFLOW_ADMIN_KEY"] == {
        "name": "DETECTFLOW_ADMIN_KEY", "valueFrom": {"secretKeyRef": {"name": "admin", "key": "admin-key"}}
    }
    assert api_env["DETECTFLOW_WEBHOOK_SECRET"]["valueFrom"]["secretKeyRef"] == {"name": "hooks", "key": "secret"}
    worker_env = {e["name"]: e for e in worker["env"]}
    assert worker_env["DETECTFLOW_WEBHOOK_SECRET"]["valueFrom"]["secretKeyRef"]["name"] == "hooks"
    assert "DETECTFLOW_ADMIN_KEY" not in worker_env


def test_render_metrics_port_is_a_container_port_not_on_the_service(make_pipeline) -> None:
    docs = {(m["kind"], m["metadata"]["name"]): m for m in render_all(make_pipeline({"redis": REDIS, "workers": [{"name": "a", "task": "face"}]}))}
    api = docs[("Deployment", "demo-api")]["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "metrics", "containerPort": 9464, "protocol": "TCP"} in api["ports"]
    assert [p["port"] for p in docs[("Service", "demo-api")]["spec"]["ports"]] == [8000]


def test_render_pods_have_read_only_root_and_writable_tmp(make_pipeline) -> None:
    spec = {
        "redis": REDIS,
        "workers": [{"name": "a", "task": "face", "model": {"uri": "https://x/m.onnx", "sha256": "a" * 64}}],
    }
    for m in render_all(make_pipeline(spec)):
        if m["kind"] != "Deployment":
            continue
        pod = m["spec"]["template"]["spec"]
        assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in pod["volumes"]
        for c in pod["containers"]:
            assert c["securityContext"]["readOnlyRootFilesystem"] is True
            assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
        for c in pod.get("initContainers", []):
            assert c["securityContext"]["readOnlyRootFilesystem"] is True
            assert c["resources"]["limits"]["memory"] and c["resources"]["limits"]["cpu"]


def test_render_network_policy_and_pdb_only_when_asked(make_pipeline) -> None:
    base = {"redis": REDIS, "workers": [{"name": "a", "task": "face"}]}
    kinds = {m["kind"] for m in render_all(make_pipeline(base))}
    assert "NetworkPolicy" not in kinds and "PodDisruptionBudget" not in kinds
    spec = {**base, "networkPolicy": {"enabled": True}, "api": {"podDisruptionBudget": {"minAvailable": 1}}}
    docs = {m["kind"]: m for m in render_all(make_pipeline(spec))}
    # Default: the API port from anywhere, the metrics port from nobody
    assert docs["NetworkPolicy"]["spec"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8000}]}]
    assert docs["PodDisruptionBudget"]["spec"]["minAvailable"] == 1
    assert docs["PodDisruptionBudget"]["spec"]["selector"] == docs["NetworkPolicy"]["spec"]["podSelector"]


def test_render_user_env_comes_after_the_operators(make_pipeline) -> None:
    spec = {
        "redis": REDIS,
        "api": {"env": [{"name": "DETECTFLOW_API_DOCS", "value": "false"}], "envFrom": [{"configMapRef": {"name": "c"}}]},
        "workers": [{"name": "a", "task": "face", "envFrom": [{"secretRef": {"name": "s"}}]}],
    }
    docs = {(m["kind"], m["metadata"]["name"]): m for m in render_all(make_pipeline(spec))}
    api = docs[("Deployment", "demo-api")]["spec"]["template"]["spec"]["containers"][0]
    assert api["env"][-1] == {"name": "DETECTFLOW_API_DOCS", "value": "false"}
    assert api["envFrom"] == [{"configMapRef": {"name": "c"}}]
    worker = docs[("Deployment", "demo-a")]["spec"]["template"]["spec"]["containers"][0]
    assert worker["envFrom"] == [{"secretRef": {"name": "s"}}]


def _worker(**fields) -> WorkerSpec:
    return WorkerSpec.model_validate({"name": "faces", "task": "face", **fields})


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, 1),  # the default resources: a 500m request, no limit
        ({"resources": {"requests": {"cpu": "500m"}, "limits": {"cpu": "2"}}}, 2),
        ({"resources": {"requests": {"cpu": "1500m"}}}, 2),
        ({"resources": {"limits": {"cpu": "2"}}, "maxBatch": 4}, 8),
        ({"device": "gpu"}, 16),  # batching on by default on a GPU: two batches of 8 in hand
        ({"device": "gpu", "maxBatch": 1}, 1),
        ({"resources": {"limits": {"cpu": "4"}}, "concurrency": 3}, 3),
    ],
)
def test_worker_concurrency_follows_the_cpus_like_the_worker_does(fields, expected):
    worker = _worker(**fields)
    assert worker_concurrency(worker) == expected
    assert target_per_replica(worker) == expected


def test_worker_deployment_renders_batching_only_when_set(make_pipeline):
    env = lambda w: {e["name"]: e.get("value") for e in w["spec"]["template"]["spec"]["containers"][0]["env"]}  # noqa: E731
    pipeline = make_pipeline(
        {"redis": REDIS, "workers": [{"name": "faces", "task": "face", "maxBatch": 4, "maxBatchDelayMs": 5},
                                     {"name": "objects", "task": "object"}]}  # fmt: skip
    )
    owner = owner_reference(pipeline)
    faces, objects = (render_worker_deployment(pipeline, w, owner) for w in pipeline.spec.workers)
    assert env(faces)["DETECTFLOW_WORKER_MAX_BATCH"] == "4" and env(faces)["DETECTFLOW_WORKER_MAX_BATCH_DELAY_MS"] == "5.0"
    assert env(faces)["DETECTFLOW_WORKER_THREADS"] == "4"  # 4 per CPU of the default request (1)
    assert "DETECTFLOW_WORKER_MAX_BATCH" not in env(objects)


@pytest.mark.parametrize(
    ("api", "expected"),
    [
        ({}, ""),
        ({"ingress": {"enabled": True, "host": "a.example"}}, "http://a.example"),
        ({"ingress": {"enabled": True, "host": "a.example", "path": "/detect/", "tls": {"secretName": "t"}}},
         "https://a.example/detect"),
        ({"ingress": {"enabled": False, "host": "a.example"}}, ""),
        ({"ingress": {"enabled": True}}, ""),
        ({"httpRoute": {"enabled": True, "parentRefs": [{"name": "gw"}], "hostnames": ["b.example", "c.example"]}},
         "https://b.example"),
        ({"publicUrl": "http://cdn.example/x/", "ingress": {"enabled": True, "host": "a.example"}}, "http://cdn.example/x"),
    ],
)  # fmt: skip
def test_public_url_prefers_the_setting_then_the_ingress_then_the_route(make_pipeline, api, expected) -> None:
    pipeline = make_pipeline({"redis": REDIS, "workers": [{"name": "f", "task": "face"}], "api": api})
    assert public_url(pipeline) == expected
    env = {e["name"]: e.get("value") for d in render_all(pipeline) if d["kind"] == "Deployment"
           for e in d["spec"]["template"]["spec"]["containers"][0]["env"]}  # fmt: skip
    assert env.get("DETECTFLOW_API_PUBLIC_URL", "") == expected


def test_exposure_and_pod_monitor_are_off_by_default(make_pipeline) -> None:
    kinds = {d["kind"] for d in render_all(make_pipeline({"redis": REDIS, "workers": [{"name": "f", "task": "face"}]}))}
    assert not kinds & {"Ingress", "HTTPRoute", "PodMonitor"}
