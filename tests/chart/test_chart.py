"""The Helm chart as data: lint, drift against the operator's sources, documented and typed values."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import pytest
import yaml

from detectflow.operator.rbac import RULES
from tests.chart.conftest import CHART, ROOT, Helm, find

#: Value sets the chart must render and lint cleanly with.
VALUE_SETS: list[list[str]] = [
    [],
    ["redis.enabled=true", "pipeline.create=true"],
    ["redis.enabled=true", "redis.persistence.enabled=false", "redis.auth.existingSecret=mine"],
    ["operator.watchNamespaces={team-a,team-b}", "serviceAccount.create=false", "serviceAccount.name=op"],
    ["pipeline.create=true", "pipeline.spec.redis.url=redis://redis:6379/0", "tests.apiUrl=http://x:8000"],
]


@pytest.mark.parametrize("sets", VALUE_SETS, ids=lambda s: ",".join(s) or "defaults")
def test_chart_lint_is_clean(helm: Helm, sets: list[str]) -> None:
    # Given the chart and a set of values / When linted strictly (warnings fail) / Then it passes.
    args = ["lint", "--strict", str(CHART)]
    for s in sets:
        args += ["--set", s]
    out = helm(*args).stdout
    assert "0 chart(s) failed" in out
    assert "[WARNING]" not in out and "[ERROR]" not in out


def test_chart_crd_is_identical_to_the_repository_crd() -> None:
    # The chart installs crds/detectionpipeline.yaml, generated from detectflow.operator.crd.
    chart_crd = (CHART / "crds" / "detectionpipeline.yaml").read_text()
    assert chart_crd == (ROOT / "crds" / "detectionpipeline.yaml").read_text(), (
        "copy it: cp crds/detectionpipeline.yaml charts/detectflow/crds/"
    )


def test_chart_rbac_cluster_rules_equal_the_operator_rules(helm: Helm) -> None:
    docs = helm.template()
    (role,) = find(docs, "ClusterRole")
    assert role["rules"] == RULES, 'update "detectflow.operator.rules" in charts/detectflow/templates/_helpers.tpl'
    (binding,) = find(docs, "ClusterRoleBinding")
    (sa,) = find(docs, "ServiceAccount")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": "detectflow-system"}
    ]


def test_chart_rbac_namespaced_rules_equal_the_operator_rules(helm: Helm) -> None:
    # Given watchNamespaces / Then one Role + RoleBinding per namespace, no cluster-wide grant.
    docs = helm.template("operator.watchNamespaces={team-a,team-b}")
    assert not find(docs, "ClusterRole") and not find(docs, "ClusterRoleBinding")
    roles = find(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert all(r["rules"] == RULES for r in roles)
    bindings = find(docs, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    (deploy,) = find(docs, "Deployment")
    args = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=team-a" in args and "--namespace=team-b" in args and "--all-namespaces" not in args


def test_chart_operator_deployment_is_one_replica_recreate_with_kopf_liveness(helm: Helm) -> None:
    (deploy,) = find(helm.template(), "Deployment")
    spec = deploy["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    (c,) = pod["containers"]
    assert c["command"] == ["detectflow", "operator"]
    assert "--liveness=http://0.0.0.0:8080/healthz" in c["args"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "liveness"}
    assert {"name": "liveness", "containerPort": 8080, "protocol": "TCP"} in c["ports"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False


def test_chart_operator_args_are_accepted_by_the_cli(helm: Helm) -> None:
    # Every flag the chart passes is one `detectflow operator` offers (a renamed flag fails here).
    (deploy,) = find(helm.template("operator.verbose=true"), "Deployment")
    args = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
    help_text = subprocess.run(
        [sys.executable, "-m", "detectflow.cli.main", "operator", "--help"],
        capture_output=True, text=True, check=True, env={"COLUMNS": "200", "PATH": ""},
    ).stdout  # fmt: skip
    for arg in args:
        flag = arg.split("=", 1)[0]
        assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", help_text), f"{flag} not in operator --help"


def test_chart_redis_is_a_persistent_statefulset_with_a_password_secret(helm: Helm) -> None:
    docs = helm.template("redis.enabled=true")
    (sts,) = find(docs, "StatefulSet")
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Delete"
    (conf,) = find(docs, "ConfigMap")
    assert "appendonly yes" in conf["data"]["redis.conf"]
    (secret,) = find(docs, "Secret")
    assert len(secret["data"]["password"]) >= 40  # base64 of 32 random characters
    (c,) = sts["spec"]["template"]["spec"]["containers"]
    assert c["command"] == ["redis-server", "/etc/redis/redis.conf"]  # no password in argv
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"]}
    assert env == {"REDISCLI_AUTH": {"name": secret["metadata"]["name"], "key": "password"}}  # probes only
    (init,) = sts["spec"]["template"]["spec"]["initContainers"]
    init_env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in init["env"]}
    assert init_env["REDIS_PASSWORD"] == {"name": secret["metadata"]["name"], "key": "password"}
    assert init["resources"]["limits"]["memory"] and init["resources"]["limits"]["cpu"]
    assert "include /run/redis-auth/auth.conf" in conf["data"]["redis.conf"]
    assert "protected-mode yes" in conf["data"]["redis.conf"]
    assert secret["metadata"]["labels"]["detectflow.io/secret"] == "true"


_REDIS_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1024, "m": 1000**2, "mb": 1024**2, "g": 1000**3, "gb": 1024**3}
_K8S_UNITS = {"": 1, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "K": 1000, "M": 1000**2, "G": 1000**3}


def _redis_bytes(text: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([a-zA-Z]*)", text).groups()
    return int(number) * _REDIS_UNITS[unit.lower()]


def _quantity_bytes(text: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([a-zA-Z]*)", text).groups()
    return int(number) * _K8S_UNITS[unit]


def test_chart_redis_defaults_cap_memory_below_the_limit_without_eviction(helm: Helm) -> None:
    # Given the chart's default values with the Redis enabled
    docs = helm.template("redis.enabled=true")
    conf = find(docs, "ConfigMap")[0]["data"]["redis.conf"].splitlines()
    settings = dict(line.strip().split(" ", 1) for line in conf if line.strip() and not line.lstrip().startswith("#"))
    (c,) = find(docs, "StatefulSet")[0]["spec"]["template"]["spec"]["containers"]
    # Then maxmemory is set, below the container's memory limit, and nothing is evicted
    limit = _quantity_bytes(c["resources"]["limits"]["memory"])
    assert 0 < _redis_bytes(settings["maxmemory"]) < limit
    assert settings["maxmemory-policy"] == "noeviction"


def test_chart_redis_network_policy_admits_only_the_pipeline_and_the_operator(helm: Helm) -> None:
    (policy,) = find(helm.template("redis.enabled=true", "pipeline.create=true"), "NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "redis"
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 6379}]
    assert rule["from"] == [
        {"podSelector": {"matchLabels": {"detectflow.io/pipeline": "df"}}},
        {"podSelector": {"matchLabels": {
            "app.kubernetes.io/name": "detectflow", "app.kubernetes.io/instance": "df",
            "app.kubernetes.io/component": "operator",
        }}},
    ]  # fmt: skip
    # Without the sample pipeline: every pipeline's pods in the namespace
    (policy,) = find(helm.template("redis.enabled=true"), "NetworkPolicy")
    assert policy["spec"]["ingress"][0]["from"][0] == {
        "podSelector": {"matchExpressions": [{"key": "detectflow.io/pipeline", "operator": "Exists"}]}
    }
    assert not find(helm.template("redis.enabled=true", "redis.networkPolicy.enabled=false"), "NetworkPolicy")


def test_chart_sample_pipeline_references_a_random_admin_key_secret(helm: Helm) -> None:
    import base64

    docs = helm.template("redis.enabled=true", "pipeline.create=true")
    (dp,) = find(docs, "DetectionPipeline")
    ref = dp["spec"]["api"]["auth"]["adminKeySecretRef"]
    assert ref == {"name": "df-detectflow-admin-key", "key": "admin-key"}
    (secret,) = find(docs, "Secret", ref["name"])
    key = base64.b64decode(secret["data"]["admin-key"]).decode()
    assert re.fullmatch(r"dfk_[A-Za-z0-9]{40}", key)
    assert secret["metadata"]["labels"]["detectflow.io/secret"] == "true"
    # Two renders (two installs) make two different keys; upgrades read the Secret back (lookup)
    (other,) = find(helm.template("redis.enabled=true", "pipeline.create=true"), "Secret", ref["name"])
    assert other["data"]["admin-key"] != secret["data"]["admin-key"]
    # An existing Secret is referenced, not created
    docs = helm.template("redis.enabled=true", "pipeline.create=true", "pipeline.adminKey.existingSecret=mine")
    assert find(docs, "DetectionPipeline")[0]["spec"]["api"]["auth"]["adminKeySecretRef"]["name"] == "mine"
    assert not find(docs, "Secret", "mine") and not find(docs, "Secret", "df-detectflow-admin-key")


def test_chart_redis_appendfsync_always_is_rendered_and_rolls_the_pod(helm: Helm) -> None:
    # Given the default (everysec) and `redis.appendfsync=always`
    default, always = helm.template("redis.enabled=true"), helm.template("redis.enabled=true", "redis.appendfsync=always")
    # Then the config says so, and the pod template changes with it (an upgrade restarts Redis on the new policy)
    assert "appendfsync everysec" in find(default, "ConfigMap")[0]["data"]["redis.conf"]
    assert "appendfsync always" in find(always, "ConfigMap")[0]["data"]["redis.conf"]

    def checksum(docs):
        return find(docs, "StatefulSet")[0]["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    assert checksum(default) != checksum(always)


def test_chart_sample_pipeline_points_at_the_chart_redis(helm: Helm) -> None:
    docs = helm.template("redis.enabled=true", "pipeline.create=true", namespace="ml")
    (dp,) = find(docs, "DetectionPipeline")
    assert dp["spec"]["redis"] == {
        "address": "df-detectflow-redis.ml.svc:6379",
        "passwordSecretRef": {"name": "df-detectflow-redis", "key": "password"},
    }
    assert dp["spec"]["workers"][0]["autoscaling"]["minReplicas"] == 0


def test_chart_sample_pipeline_validates_against_the_crd_models(helm: Helm) -> None:
    from detectflow.operator.crd import DetectionPipeline

    (dp,) = find(helm.template("redis.enabled=true", "pipeline.create=true"), "DetectionPipeline")
    pipeline = DetectionPipeline.from_body(dp)
    assert [w.name for w in pipeline.spec.workers] == ["faces"]


def test_chart_sample_pipeline_without_redis_fails_to_render(helm: Helm) -> None:
    proc = helm("template", "df", str(CHART), "--set", "pipeline.create=true", check=False)
    assert proc.returncode != 0 and "pipeline.spec.redis" in proc.stderr


def test_chart_test_hook_renders_only_with_an_api_to_test(helm: Helm) -> None:
    assert not find(helm.template(), "Pod")
    (pod,) = find(helm.template("redis.enabled=true", "pipeline.create=true"), "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["spec"]["restartPolicy"] == "Never"
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in pod["spec"]["containers"][0]["env"]}
    assert env["API_URL"] == "http://df-api.detectflow-system.svc:8000"
    # The test authenticates with the admin key, read from its Secret (never a literal)
    assert env["API_KEY"] == {"secretKeyRef": {"name": "df-detectflow-admin-key", "key": "admin-key"}}
    assert "Authorization" in pod["spec"]["containers"][0]["command"][2]


@pytest.mark.parametrize(
    "bad",
    [
        "redis.persistence.whenDeleted=Sometimes",
        "operator.resyncSeconds=0",
        "operator.unknownKnob=1",
        "redis.appendfsync=weekly",
        "image.pullPolicy=Sometimes",
    ],
)
def test_chart_schema_rejects_bad_values(helm: Helm, bad: str) -> None:
    proc = helm("lint", str(CHART), "--set", bad, check=False)
    assert proc.returncode != 0
    assert "schema" in proc.stdout + proc.stderr


# --- values.yaml: every value documented (`# --`) and typed (values.schema.json) -----------------


def _values_keys(text: str) -> list[tuple[tuple[str, ...], bool, bool]]:
    """(path, documented, is_leaf) for each key of values.yaml, from its indentation."""
    lines = text.splitlines()
    keys: list[tuple[int, tuple[str, ...], bool, bool]] = []  # indent, path, documented, inline value
    stack: list[tuple[int, str]] = []
    comment: list[str] = []
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("#"):
            comment.append(stripped)
            continue
        m = re.match(r"^( *)([A-Za-z0-9_.-]+):(.*)$", line)
        if not m or line.lstrip().startswith("- "):
            comment = []
            continue
        indent = len(m.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = tuple(k for _, k in stack) + (m.group(2),)
        keys.append((indent, path, any(c.startswith("# --") for c in comment), bool(m.group(3).strip())))
        stack.append((indent, m.group(2)))
        comment = []
    out = []
    for i, (indent, path, documented, inline) in enumerate(keys):
        nxt = keys[i + 1][0] if i + 1 < len(keys) else -1
        out.append((path, documented, inline or nxt <= indent))
    return out


def _schema_node(schema: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any] | None:
    node: dict[str, Any] | None = schema
    for key in path:
        props = (node or {}).get("properties") or {}
        if key not in props:
            return None
        node = props[key]
    return node


def test_chart_values_are_all_documented() -> None:
    keys = _values_keys((CHART / "values.yaml").read_text())
    documented = {p for p, d, _ in keys if d}
    undocumented = [
        ".".join(p)
        for p, d, leaf in keys
        if leaf and not any(p[:i] in documented for i in range(1, len(p) + 1))
    ]
    assert not undocumented, f"values without a `# --` comment: {undocumented}"


def test_chart_values_are_all_typed_in_the_schema() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    keys = _values_keys((CHART / "values.yaml").read_text())
    documented = {p for p, d, _ in keys if d}
    # Every documented value (the unit a user sets) has a schema node with a type...
    missing = [".".join(p) for p in documented if "type" not in (_schema_node(schema, p) or {})]
    assert not missing, f"values not typed in values.schema.json: {missing}"
    # ...and the schema describes no value that values.yaml lacks.
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(node: dict[str, Any], data: Any, path: str) -> list[str]:
        extra = []
        for key, sub in (node.get("properties") or {}).items():
            if key == "global":
                continue
            if not isinstance(data, dict) or key not in data:
                extra.append(f"{path}{key}")
            elif sub.get("additionalProperties") is False:
                extra += walk(sub, data[key], f"{path}{key}.")
        return extra

    assert walk(schema, values, "") == []


def test_chart_values_schema_is_valid_json_schema() -> None:
    import jsonschema

    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.validate(yaml.safe_load((CHART / "values.yaml").read_text()), schema)



def test_chart_cleanup_hook_deletes_the_sample_pipeline_before_the_operator(helm: Helm) -> None:
    # Without a sample pipeline there is nothing to clean up.
    assert not find(helm.template(), "Job")
    docs = helm.template("redis.enabled=true", "pipeline.create=true")
    hooks = [d for d in docs if d["metadata"].get("annotations", {}).get("helm.sh/hook") == "pre-delete"]
    assert sorted(d["kind"] for d in hooks) == ["Job", "Role", "RoleBinding", "ServiceAccount"]
    # The RBAC comes first (weight -10), then the Job; all are deleted once it succeeds.
    weights = {d["kind"]: int(d["metadata"]["annotations"]["helm.sh/hook-weight"]) for d in hooks}
    assert weights["Job"] > max(weights[k] for k in ("Role", "RoleBinding", "ServiceAccount"))
    assert all("hook-succeeded" in d["metadata"]["annotations"]["helm.sh/hook-delete-policy"] for d in hooks)
    (role,) = [d for d in hooks if d["kind"] == "Role"]
    assert role["rules"] == [
        {"apiGroups": ["detectflow.io"], "resources": ["detectionpipelines"], "verbs": ["delete", "list"]}
    ]
    (job,) = [d for d in hooks if d["kind"] == "Job"]
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["SELECTOR"] == "app.kubernetes.io/instance=df,app.kubernetes.io/component=pipeline"
    (dp,) = find(docs, "DetectionPipeline")
    assert dp["metadata"]["labels"]["app.kubernetes.io/component"] == "pipeline"
