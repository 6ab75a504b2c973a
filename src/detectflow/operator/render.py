"""Pure functions turning a DetectionPipeline into the manifests of its children."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from kubernetes.utils.quantity import parse_quantity

from detectflow.worker.layout import choose_max_batch
from detectflow.keys import KeyLayout, detect_queue, pipeline_prefix
from detectflow.operator.crd import (
    GROUP,
    KIND,
    VERSION,
    DetectionPipeline,
    EnvVar,
    RedisSpec,
    SecretKeyRef,
    WorkerSpec,
)

__all__ = [
    "FIELD_MANAGER",
    "CHILD_KINDS",
    "PRUNABLE_KINDS",
    "RedisTarget",
    "child_name",
    "labels",
    "owner_reference",
    "queue_keys",
    "redis_prefix",
    "redis_target",
    "render_all",
    "public_url",
    "render_api_deployment",
    "render_api_http_route",
    "render_api_ingress",
    "render_api_network_policy",
    "render_api_pdb",
    "render_api_service",
    "render_pod_monitor",
    "render_scaled_object",
    "render_service_account",
    "render_trigger_authentication",
    "render_worker_deployment",
]

#: The one server-side-apply field manager of the operator.
FIELD_MANAGER = "detectflow-operator"
#: Port the API listens on in its pod and the Service exposes.
DEFAULT_API_PORT = 8000
#: Port of the API's Prometheus /metrics in its pod (a container port, not on the Service).
DEFAULT_API_METRICS_PORT = 9464
#: Port of a worker's Prometheus /metrics in its pod (a container port, scraped by a PodMonitor).
DEFAULT_WORKER_METRICS_PORT = 9465
#: Size cap of the writable /tmp of API and worker pods (the root filesystem is read-only).
DEFAULT_TMP_SIZE_LIMIT = "64Mi"
#: Resources of the model-fetching init container (it streams the file to disk).
DEFAULT_INIT_RESOURCES = {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}}
#: Label a Secret needs before the operator reads or references it.
SECRET_LABEL = "detectflow.io/secret"
#: Grace period added to a worker's time limit so scale-in lets a running job finish (seconds).
DEFAULT_GRACE_MARGIN_SECONDS = 30
#: Where a worker pod's processes touch their heartbeat files (on the writable /tmp).
DEFAULT_HEARTBEAT_DIR = "/tmp/detectflow-heartbeat"
#: A heartbeat older than this fails the worker's liveness probe (seconds): a wedged process.
DEFAULT_HEARTBEAT_MAX_AGE_SECONDS = 30
#: How long a worker may take to load and warm its model before liveness counts (seconds).
DEFAULT_WORKER_STARTUP_SECONDS = 300
#: Where models fetched from a URI are stored in a worker pod.
DEFAULT_MODEL_DIR = "/models"
#: Longest Kubernetes object name the helper produces (DNS label).
MAX_NAME_LENGTH = 63

#: Child kinds, in apply order: (apiVersion, kind).
CHILD_KINDS: tuple[tuple[str, str], ...] = (
    ("v1", "ServiceAccount"),
    ("v1", "Service"),
    ("apps/v1", "Deployment"),
    ("policy/v1", "PodDisruptionBudget"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("networking.k8s.io/v1", "Ingress"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("keda.sh/v1alpha1", "ScaledObject"),
)

#: Kinds that can stop being desired while the pipeline lives (removed worker, removed
#: password), so the operator prunes them; ServiceAccounts and the Service always exist.
PRUNABLE_KINDS: tuple[tuple[str, str], ...] = (
    ("apps/v1", "Deployment"),
    ("policy/v1", "PodDisruptionBudget"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("networking.k8s.io/v1", "Ingress"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("keda.sh/v1alpha1", "ScaledObject"),
)

_PIPELINE_LABEL = "detectflow.io/pipeline"
_WORKER_LABEL = "detectflow.io/worker"

_FETCH_MODEL = """\
import hashlib, os, sys, urllib.request
uri, digest, dest = sys.argv[1:4]
h = hashlib.sha256()
with urllib.request.urlopen(uri, timeout=60) as r, open(dest + ".part", "wb") as f:
    for chunk in iter(lambda: r.read(1 << 20), b""):
        h.update(chunk)
        f.write(chunk)
if h.hexdigest() != digest:
    sys.exit(f"sha256 mismatch for {uri}: got {h.hexdigest()}, want {digest}")
os.replace(dest + ".part", dest)
"""


def child_name(*parts: str) -> str:
    """Join ``parts`` with ``-`` into a name of at most 63 characters.

    Parameters
    ----------
    *parts
        Name parts, e.g. the pipeline name and ``api``.

    Returns
    -------
    str
        The joined name; a longer one is cut and ends with 8 hex characters of its hash,
        so two long names stay distinct.
    """
    name = "-".join(parts)
    if len(name) <= MAX_NAME_LENGTH:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: MAX_NAME_LENGTH - 9].rstrip('-')}-{digest}"


def labels(pipeline: DetectionPipeline, component: str, worker: str | None = None) -> dict[str, str]:
    """Labels of every child: app.kubernetes.io/* plus ``detectflow.io/pipeline``.

    Parameters
    ----------
    pipeline
        The parsed pipeline.
    component
        ``api`` or ``worker``.
    worker
        The worker's name, for worker children.

    Returns
    -------
    dict
        Label map (also the basis of the selectors).
    """
    out = {
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/instance": pipeline.name,
        "app.kubernetes.io/managed-by": FIELD_MANAGER,
        "app.kubernetes.io/name": "detectflow",
        "app.kubernetes.io/part-of": "detectflow",
        _PIPELINE_LABEL: pipeline.name,
    }
    if worker is not None:
        out[_WORKER_LABEL] = worker
    return out


def child_selector(pipeline_name: str) -> str:
    """Label selector matching every child the operator made for one pipeline."""
    return f"app.kubernetes.io/managed-by={FIELD_MANAGER},{_PIPELINE_LABEL}={pipeline_name}"


def _selector(pipeline: DetectionPipeline, component: str, worker: str | None = None) -> dict[str, str]:
    out = {"app.kubernetes.io/instance": pipeline.name, "app.kubernetes.io/component": component}
    if worker is not None:
        out[_WORKER_LABEL] = worker
    return out


def owner_reference(pipeline: DetectionPipeline) -> dict[str, Any]:
    """The controller owner reference every child carries (garbage collection).

    Parameters
    ----------
    pipeline
        The parsed pipeline; its ``uid`` must be set.

    Returns
    -------
    dict
        One ``metadata.ownerReferences`` entry.
    """
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "name": pipeline.name,
        "uid": pipeline.uid,
        "controller": True,
    }


def _metadata(pipeline: DetectionPipeline, name: str, owner: dict[str, Any], lbls: dict[str, str]) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": pipeline.namespace, "labels": lbls}
    if owner.get("uid"):
        # Rendered from a file (no uid): the manifests stand alone, without an owner.
        meta["ownerReferences"] = [owner]
    return meta


# --- redis -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RedisTarget:
    """Where Redis is, as both the processes and KEDA need it."""

    host: str
    port: int
    database: int
    tls: bool
    username: str | None = None

    @property
    def address(self) -> str:
        """``host:port`` for KEDA's redis scaler."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """Password-less URL for DETECTFLOW_REDIS_URL."""
        scheme = "rediss" if self.tls else "redis"
        user = f"{self.username}@" if self.username else ""
        return f"{scheme}://{user}{self.host}:{self.port}/{self.database}"


def redis_target(spec: RedisSpec) -> RedisTarget:
    """Resolve ``spec.redis`` (address or URL) into host, port, database and TLS.

    Parameters
    ----------
    spec
        The pipeline's Redis spec.

    Returns
    -------
    RedisTarget
        The resolved connection.
    """
    if spec.url:
        parts = urlsplit(spec.url)
        path = parts.path.strip("/")
        return RedisTarget(
            host=parts.hostname or "",
            port=parts.port or 6379,
            database=int(path) if path else 0,
            tls=parts.scheme == "rediss",
            username=parts.username or None,
        )
    host, _, port = (spec.address or "").rpartition(":")
    return RedisTarget(host=host, port=int(port), database=spec.database or 0, tls=bool(spec.tls))


def redis_prefix(pipeline: DetectionPipeline) -> str:
    """Key prefix (Dramatiq namespace) of one pipeline: ``detectflow:<namespace>:<name>``."""
    return pipeline_prefix(pipeline.namespace, pipeline.name)


def queue_keys(prefix: str, task: str) -> dict[str, str]:
    """The Redis hashes whose sum is ``task``'s queue depth, by KEDA trigger name.

    Parameters
    ----------
    prefix
        The pipeline's key prefix.
    task
        The worker's task.

    Returns
    -------
    dict
        ``{"unfinished": <the queue's .msgs hash>, "delayed": <its .DQ.msgs hash>}``
        (:meth:`detectflow.keys.KeyLayout.depth_keys`).
    """
    unfinished, delayed = KeyLayout(prefix).depth_keys(detect_queue(str(task)))
    return {"unfinished": unfinished, "delayed": delayed}


def _redis_env(pipeline: DetectionPipeline) -> list[dict[str, Any]]:
    redis = pipeline.spec.redis
    env: list[dict[str, Any]] = [
        {"name": "DETECTFLOW_REDIS_PREFIX", "value": redis_prefix(pipeline)},
        {"name": "DETECTFLOW_REDIS_URL", "value": redis_target(redis).url},
    ]
    if redis.password_secret_ref:
        ref = redis.password_secret_ref
        env.append(
            {
                "name": "DETECTFLOW_REDIS_PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}},
            }
        )
    return env


def _storage_env(pipeline: DetectionPipeline) -> list[dict[str, Any]]:
    """The blob store's variables, the same in API and worker pods (they share only Redis and the bucket)."""
    storage = pipeline.spec.storage
    env: list[dict[str, Any]] = [{"name": "DETECTFLOW_STORAGE", "value": storage.type}]
    if storage.type != "s3":
        return env
    values = {
        "DETECTFLOW_STORAGE_S3_BUCKET": storage.bucket,
        "DETECTFLOW_STORAGE_S3_PREFIX": storage.prefix,
        "DETECTFLOW_STORAGE_S3_ENDPOINT": storage.endpoint,
        "DETECTFLOW_STORAGE_S3_REGION": storage.region,
        "DETECTFLOW_STORAGE_S3_ADDRESSING_STYLE": storage.addressing_style,
    }
    env += [{"name": k, "value": v} for k, v in values.items() if v]
    ref = storage.credentials_secret_ref
    if ref is not None:
        env += [
            {"name": "AWS_ACCESS_KEY_ID", "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.access_key_id_key}}},
            {"name": "AWS_SECRET_ACCESS_KEY",
             "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.secret_access_key_key}}},
        ]  # fmt: skip
    return env


def _secret_env(name: str, ref: SecretKeyRef | None) -> list[dict[str, Any]]:
    if ref is None:
        return []
    return [{"name": name, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}]


def _env(values: dict[str, Any], extra: list[dict[str, Any]], user: list[EnvVar]) -> list[dict[str, Any]]:
    """The operator's variables sorted by name, then the user's in their order (a later entry wins)."""
    env = [{"name": k, "value": str(v)} for k, v in values.items()] + extra
    ours = sorted(env, key=lambda e: e["name"])
    return ours + [e.model_dump(by_alias=True, exclude_none=True) for e in user]


def referenced_secrets(pipeline: DetectionPipeline) -> list[tuple[str, SecretKeyRef]]:
    """Every Secret key the pipeline references, with the field naming it.

    Parameters
    ----------
    pipeline
        The parsed pipeline.

    Returns
    -------
    list of tuple
        ``(field path, ref)`` for the Redis password, the admin key and the webhook secret that are set.
    """
    spec = pipeline.spec
    refs = [
        ("spec.redis.passwordSecretRef", spec.redis.password_secret_ref),
        ("spec.api.auth.adminKeySecretRef", spec.api.auth.admin_key_secret_ref),
        ("spec.webhooks.secretRef", spec.webhooks.secret_ref),
    ]
    return [(path, ref) for path, ref in refs if ref is not None]


def _resources(requests: dict[str, Any], limits: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = {k: str(requests[k]) for k in sorted(requests)}
    if limits:
        out["limits"] = {k: str(limits[k]) for k in sorted(limits)}
    return out


_POD_SECURITY = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
_CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
}
_TMP_MOUNT = {"name": "tmp", "mountPath": "/tmp"}
_TMP_VOLUME = {"name": "tmp", "emptyDir": {"sizeLimit": DEFAULT_TMP_SIZE_LIMIT}}


def _pod_spec_common(pipeline: DetectionPipeline, service_account: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "serviceAccountName": service_account,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": _POD_SECURITY,
    }
    if pipeline.spec.image.pull_secrets:
        spec["imagePullSecrets"] = [{"name": n} for n in sorted(set(pipeline.spec.image.pull_secrets))]
    return spec


# --- children --------------------------------------------------------------------------


def render_service_account(pipeline: DetectionPipeline, owner: dict[str, Any], component: str) -> dict[str, Any]:
    """ServiceAccount ``<pipeline>-<component>`` with no API rights and no mounted token.

    Parameters
    ----------
    pipeline
        The parsed pipeline.
    owner
        Owner reference from :func:`owner_reference`.
    component
        ``api`` or ``worker``.

    Returns
    -------
    dict
        The ServiceAccount manifest.
    """
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _metadata(pipeline, child_name(pipeline.name, component), owner, labels(pipeline, component)),
        "automountServiceAccountToken": False,
    }


def render_api_deployment(pipeline: DetectionPipeline, owner: dict[str, Any]) -> dict[str, Any]:
    """Deployment ``<pipeline>-api`` running ``detectflow api`` with health probes.

    Parameters
    ----------
    pipeline
        The parsed pipeline.
    owner
        Owner reference from :func:`owner_reference`.

    Returns
    -------
    dict
        The Deployment manifest.
    """
    spec = pipeline.spec
    api = spec.api
    name = child_name(pipeline.name, "api")
    lbls = labels(pipeline, "api")
    env = _env(
        {
            "DETECTFLOW_API_HOST": "0.0.0.0",
            "DETECTFLOW_API_MAX_QUEUE_DEPTH": api.max_queue_depth,
            "DETECTFLOW_API_MAX_UPLOAD_BYTES": api.max_upload_bytes,
            "DETECTFLOW_API_METRICS_PORT": DEFAULT_API_METRICS_PORT,
            "DETECTFLOW_API_PORT": DEFAULT_API_PORT,
            "DETECTFLOW_JOB_TTL_SECONDS": api.result_ttl_seconds,
            **_exposure_env(pipeline),
        },
        _redis_env(pipeline)
        + _storage_env(pipeline)
        + _secret_env("DETECTFLOW_ADMIN_KEY", api.auth.admin_key_secret_ref)
        + _secret_env("DETECTFLOW_WEBHOOK_SECRET", spec.webhooks.secret_ref),
        api.env,
    )
    container = {
        "name": "api",
        "image": f"{spec.image.api.repository}:{spec.image.api.tag}",
        "imagePullPolicy": spec.image.pull_policy,
        "command": ["detectflow", "api"],
        "env": env,
        **({"envFrom": list(api.env_from)} if api.env_from else {}),
        "ports": [
            {"name": "http", "containerPort": DEFAULT_API_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": DEFAULT_API_METRICS_PORT, "protocol": "TCP"},
        ],
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "http"},
            "periodSeconds": 10,
            "timeoutSeconds": 3,
            "failureThreshold": 3,
        },
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": "http"},
            "periodSeconds": 5,
            "timeoutSeconds": 3,
            "failureThreshold": 2,
        },
        "resources": _resources(api.resources.requests, api.resources.limits),
        "securityContext": _CONTAINER_SECURITY,
        "volumeMounts": [_TMP_MOUNT],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(pipeline, name, owner, lbls),
        "spec": {
            "replicas": api.replicas,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": _selector(pipeline, "api")},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {
                    "labels": lbls,
                    **({"annotations": dict(sorted(api.pod_annotations.items()))} if api.pod_annotations else {}),
                },
                "spec": {
                    **_pod_spec_common(pipeline, child_name(pipeline.name, "api")),
                    "containers": [container],
                    "volumes": [_TMP_VOLUME],
                    **_api_scheduling(pipeline),
                },
            },
        },
    }


def public_url(pipeline: DetectionPipeline) -> str:
    """The API's public base URL: ``api.publicUrl``, else from the Ingress or the HTTPRoute; "" if none.

    Parameters
    ----------
    pipeline
        The parsed pipeline.

    Returns
    -------
    str
        ``https://<host><path>`` for an Ingress with TLS (``http://`` without) or an HTTPRoute's first
        hostname (Gateways terminate TLS), without a trailing slash; "" when no host is known.
    """
    api = pipeline.spec.api
    if api.public_url:
        return api.public_url.rstrip("/")
    if api.ingress.enabled and api.ingress.host:
        scheme = "https" if api.ingress.tls else "http"
        return f"{scheme}://{api.ingress.host}{api.ingress.path.rstrip('/')}"
    if api.http_route.enabled and api.http_route.hostnames:
        return f"https://{api.http_route.hostnames[0]}{api.http_route.path.rstrip('/')}"
    return ""


def _exposure_env(pipeline: DetectionPipeline) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if url := public_url(pipeline):
        out["DETECTFLOW_API_PUBLIC_URL"] = url
    if pipeline.spec.api.forwarded_allow_ips:
        out["DETECTFLOW_API_FORWARDED_ALLOW_IPS"] = ",".join(pipeline.spec.api.forwarded_allow_ips)
    return out


def _api_scheduling(pipeline: DetectionPipeline) -> dict[str, Any]:
    """The API pod's nodeSelector, tolerations, affinity and topologySpreadConstraints, when set."""
    api = pipeline.spec.api
    out: dict[str, Any] = {}
    if api.node_selector:
        out["nodeSelector"] = dict(sorted(api.node_selector.items()))
    if api.tolerations:
        out["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True) for t in api.tolerations]
    if api.affinity:
        out["affinity"] = dict(api.affinity)
    if api.topology_spread_constraints:
        out["topologySpreadConstraints"] = [dict(c) for c in api.topology_spread_constraints]
    return out


def render_api_ingress(pipeline: DetectionPipeline, owner: dict[str, Any]) -> dict[str, Any] | None:
    """Ingress ``<pipeline>-api`` routing ``host`` + ``path`` to the API Service.

    Parameters
    ----------
    pipeline
        The parsed pipeline.
    owner
        Owner reference from :func:`owner_reference`.

    Returns
    -------
    dict or None
        The manifest, or None unless ``spec.api.ingress.enabled``.
    """
    ingress = pipeline.spec.api.ingress
    if not ingress.enabled:
        return None
    meta = _metadata(pipeline, child_name(pipeline.name, "api"), owner, labels(pipeline, "api"))
    if ingress.annotations:
        meta["annotations"] = dict(sorted(ingress.annotations.items()))
    backend = {"service": {"name": child_name(pipeline.name, "api"), "port": {"name": "http"}}}
    rule: dict[str, Any] = {"http": {"paths": [{"path": ingress.path, "pathType": "Prefix", "backend": backend}]}}
    if ingress.host:
        rule = {"host": ingress.host, **rule}
    spec: dict[str, Any] = {}
    if ingress.class_name:
        spec["ingressClassName"] = ingress.class_name
    if ingress.tls:
        spec["tls"] = [{"hosts": [ingress.host], "secretName": ingress.tls.secret_name}]
    spec["rules"] = [rule]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": spec}


def render_api_http_route(pipeline: DetectionPipeline, owner: dict[str, Any]) -> dict[str, Any] | None:
    """Gateway API HTTPRoute ``<pipeline>-api`` from the given Gateways to the API Service.

    Parameters
    ----------
    pipeline
        The parsed pipeline.
    owner
        Owner reference from :func:`owner_reference`.

    Returns
    -------
    dict or None
        The manifest, or None unless ``spec.api.httpRoute.enabled``.
    """
    route = pipeline.spec.api.http_route
    if not route.enabled:
        return None
    meta = _metadata(pipeline, child_name(pipeline.name, "api"), owner, labels(pipeline, "api"))
    if route.annotations:
        meta["annotations"] = dict(sorted(route.annotations.items()))
    spec: dict[str, Any] = {"parentRefs": [p.model_dump(by_alias=True, exclude_none=True) for p in route.parent_refs]}
    if route.hostnames:
        spec["hostnames"] = list(route.hostnames)
    spec["rules"] = [
        {
            "matches": [{"path": {"type": "PathPrefix", "value": route.path}}],
            "backendRefs": [{"name": child_name(pipeline.name, "api"), "port": DEFAULT_API_PORT}],
        }
    ]
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": meta, "spec": spec}


def render_pod_monitor(pipeline: DetectionPipeline, owner: dict[str, Any]) -> dict[str, Any] | None:
    """PodMonitor ``<pipeline>`` scraping the port ``metrics`` of the API and worker pods.

    Parameters
    ----------
    pipeline
        The parsed pipeline.
    owner
        Owner reference from :func:`owner_reference`.

    Returns
    -------
    dict or None
        The manifest, or None unless ``spec.monitoring.podMonitor.enabled``.
    """
    monitor = pipeline.spec.monitoring.pod_monitor
    if not monitor.enabled:
        return None
    lbls = {**labels(pipeline, "monitoring"), **dict(sorted(monitor.labels.items()))}
    endpoint = {
        "port": "metrics",
        "path": "/metrics",
        "interval": monitor.interval,
        "relabelings": [
            {"sourceLabels": ["__meta_kubernetes_pod_label_detectflow_io_pipeline"], "targetLabel": "pipeline"},
            {"sourceLabels": ["__meta_kubernetes_pod_label_app_kubernetes_io_component"], "targetLabel": "component"},
        ],
    }
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": _metadata(pipeline, child_name(pipeline.name), owner, lbls),
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/instance": pipeline.name, _PIPELINE_LABEL: pipeline.name}},
            "podMetricsEndpoints": [endpoint],
        },
    }


def render_api_service(pipeline: DetectionPipeline, owner: dict[str, Any]) -> dict[str, Any]:
    """Service ``<pipeline>-api`` in front of the API pods.

    Parameters
    ----------
    pipeline
        The parsed pipeline.
    owner
        Owner reference from :func:`owner_reference`.

    Returns
    -------
    dict
        The Service manifest.
    """
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(pipeline, child_name(pipeline.name, "api"), owner, labels(pipeline, "api")),
        "spec": {
            "type": "ClusterIP",
            "selector": _selector(pipeline, "api"),
            "ports": [{"name": "http", "port": DEFAULT_API_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def render_api_pdb(pipeline: DetectionPipeline, owner: dict[str, Any]) -> dict[str, Any] | None:
    """PodDisruptionBudget ``<pipeline>-api`` keeping ``minAvailable`` API pods through drains.

    Parameters
    ----------
    pipeline
        The parsed pipeline.
    owner
        Owner reference from :func:`owner_reference`.

    Returns
    -------
    dict or None
        The manifest, or None without ``spec.api.podDisruptionBudget.minAvailable``.
    """
    min_available = pipeline.spec.api.pod_disruption_budget.min_available
    if min_available is None:
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(pipeline, child_name(pipeline.name, "api"), owner, labels(pipeline, "api")),
        "spec": {"minAvailable": min_available, "selector": {"matchLabels": _selector(pipeline, "api")}},
    }


def render_api_network_policy(pipeline: DetectionPipeline, owner: dict[str, Any]) -> dict[str, Any] | None:
    """NetworkPolicy ``<pipeline>-api``: ingress to the API port from ``apiIngressFrom`` (default anywhere),
    to the metrics port only from ``metricsIngressFrom``; egress is not restricted.

    Parameters
    ----------
    pipeline
        The parsed pipeline.
    owner
        Owner reference from :func:`owner_reference`.

    Returns
    -------
    dict or None
        The manifest, or None unless ``spec.networkPolicy.enabled``.
    """
    policy = pipeline.spec.network_policy
    if not policy.enabled:
        return None
    api_rule: dict[str, Any] = {"ports": [{"protocol": "TCP", "port": DEFAULT_API_PORT}]}
    if policy.api_ingress_from:
        api_rule["from"] = list(policy.api_ingress_from)
    ingress = [api_rule]
    if policy.metrics_ingress_from:
        ingress.append(
            {"from": list(policy.metrics_ingress_from), "ports": [{"protocol": "TCP", "port": DEFAULT_API_METRICS_PORT}]}
        )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(pipeline, child_name(pipeline.name, "api"), owner, labels(pipeline, "api")),
        "spec": {"podSelector": {"matchLabels": _selector(pipeline, "api")}, "policyTypes": ["Ingress"], "ingress": ingress},
    }


def api_endpoint(pipeline: DetectionPipeline) -> str:
    """In-cluster URL of the pipeline's API Service."""
    return f"http://{child_name(pipeline.name, 'api')}.{pipeline.namespace}.svc:{DEFAULT_API_PORT}"


def _gpu_tolerations(worker: WorkerSpec) -> list[dict[str, Any]]:
    tolerations = [t.model_dump(by_alias=True, exclude_none=True) for t in worker.tolerations]
    gpu = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    if worker.device == "gpu" and gpu not in tolerations:
        tolerations.append(gpu)
    return tolerations


def _worker_probes() -> dict[str, Any]:
    """Exec probes on the heartbeat files each worker process touches once its model is loaded.

    Ready once every process beats; live while none is silent for longer than
    ``DEFAULT_HEARTBEAT_MAX_AGE_SECONDS`` (a process wedged in C holding the GIL); the startup probe
    gives the model load its time. No port: the probe reads files (see ``detectflow.worker.probe``).
    """
    probe = {
        "exec": {
            "command": [
                "python", "-m", "detectflow.worker.probe", DEFAULT_HEARTBEAT_DIR, str(DEFAULT_HEARTBEAT_MAX_AGE_SECONDS),
            ]
        },
        "timeoutSeconds": 5,
    }  # fmt: skip
    return {
        "startupProbe": {**probe, "periodSeconds": 5, "failureThreshold": DEFAULT_WORKER_STARTUP_SECONDS // 5},
        "readinessProbe": {**probe, "periodSeconds": 10, "failureThreshold": 1},
        "livenessProbe": {**probe, "periodSeconds": 15, "failureThreshold": 3},
    }


def render_worker_deployment(pipeline: DetectionPipeline, worker: WorkerSpec, owner: dict[str, Any]) -> dict[str, Any]:
    """Deployment ``<pipeline>-<worker>`` running ``detectflow worker --task <task>``.

    Replicas are left to KEDA (no ``spec.replicas``). The grace period exceeds the time
    limit so a scale-in lets the running job finish; prefetch equals the thread count.

    Parameters
    ----------
    pipeline
        The parsed pipeline.
    worker
        One entry of ``spec.workers``.
    owner
        Owner reference from :func:`owner_reference`.

    Returns
    -------
    dict
        The Deployment manifest.
    """
    spec = pipeline.spec
    task = worker.task.value
    gpu = worker.device == "gpu"
    image = spec.image.gpu_worker if gpu else spec.image.worker
    lbls = labels(pipeline, "worker", worker.name)
    values: dict[str, Any] = {
        "DETECTFLOW_DEVICE": worker.device,
        "DETECTFLOW_JOB_TTL_SECONDS": spec.api.result_ttl_seconds,
        "DETECTFLOW_WORKER_MAX_RETRIES": worker.retries,
        "DETECTFLOW_WORKER_METRICS_HOST": "0.0.0.0",
        "DETECTFLOW_WORKER_METRICS_PORT": DEFAULT_WORKER_METRICS_PORT,
        "DETECTFLOW_WORKER_PROCESSES": 1,
        "DETECTFLOW_WORKER_HEARTBEAT_DIR": DEFAULT_HEARTBEAT_DIR,
        "DETECTFLOW_WORKER_TASK": task,
        "DETECTFLOW_WORKER_THREADS": (threads := worker_concurrency(worker)),
        "DETECTFLOW_WORKER_TIME_LIMIT_SECONDS": worker.time_limit_seconds,
        "dramatiq_queue_prefetch": threads,
    }
    if worker.max_batch is not None:
        values["DETECTFLOW_WORKER_MAX_BATCH"] = worker.max_batch
    if worker.max_batch_delay_ms is not None:
        values["DETECTFLOW_WORKER_MAX_BATCH_DELAY_MS"] = worker.max_batch_delay_ms
    if url := public_url(pipeline):  # the webhooks' job links
        values["DETECTFLOW_API_PUBLIC_URL"] = url
    pod: dict[str, Any] = _pod_spec_common(pipeline, child_name(pipeline.name, "worker"))
    container: dict[str, Any] = {
        "name": "worker",
        "image": f"{image.repository}:{image.tag}",
        "imagePullPolicy": spec.image.pull_policy,
        "command": ["detectflow", "worker", "--task", task],
        "ports": [{"name": "metrics", "containerPort": DEFAULT_WORKER_METRICS_PORT, "protocol": "TCP"}],
    }
    # the recognition pool's model is its embedder (its face detector is the built-in one)
    model_env = "DETECTFLOW_EMBED_MODEL" if task == "recognition" else f"DETECTFLOW_{task.upper()}_MODEL"
    if worker.model and worker.model.name:
        values[model_env] = worker.model.name
    elif worker.model and worker.model.uri:
        path = f"{DEFAULT_MODEL_DIR}/{worker.model.sha256}.onnx"
        # A downloaded file has no model card beside it: name its output layout instead.
        postprocessor = worker.model.postprocessor or ("retinaface" if task == "face" else "yolo")
        values[model_env] = f"{postprocessor}:{path}"
        mount = {"name": "models", "mountPath": DEFAULT_MODEL_DIR}
        pod["initContainers"] = [
            {
                "name": "fetch-model",
                "image": f"{image.repository}:{image.tag}",
                "imagePullPolicy": spec.image.pull_policy,
                "command": ["python", "-c", _FETCH_MODEL, worker.model.uri, worker.model.sha256, path],
                "volumeMounts": [mount],
                "resources": DEFAULT_INIT_RESOURCES,
                "securityContext": _CONTAINER_SECURITY,
            }
        ]
        pod["volumes"] = [{"name": "models", "emptyDir": {}}]
        container["volumeMounts"] = [mount]
    container["volumeMounts"] = [*container.get("volumeMounts", []), _TMP_MOUNT]
    pod["volumes"] = [*pod.get("volumes", []), _TMP_VOLUME]
    limits = dict(worker.resources.limits)
    if gpu:
        limits["nvidia.com/gpu"] = worker.gpus or 1
    container["env"] = _env(
        values,
        _redis_env(pipeline) + _storage_env(pipeline) + _secret_env("DETECTFLOW_WEBHOOK_SECRET", spec.webhooks.secret_ref),
        worker.env,
    )
    if worker.env_from:
        container["envFrom"] = list(worker.env_from)
    container["resources"] = _resources(worker.resources.requests, limits)
    container["securityContext"] = _CONTAINER_SECURITY
    container |= _worker_probes()
    pod["terminationGracePeriodSeconds"] = worker.time_limit_seconds + DEFAULT_GRACE_MARGIN_SECONDS
    if worker.node_selector:
        pod["nodeSelector"] = dict(sorted(worker.node_selector.items()))
    tolerations = _gpu_tolerations(worker)
    if tolerations:
        pod["tolerations"] = tolerations
    pod["containers"] = [container]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(pipeline, child_name(pipeline.name, worker.name), owner, lbls),
        "spec": {
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": _selector(pipeline, "worker", worker.name)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": lbls}, "spec": pod},
        },
    }


def render_trigger_authentication(pipeline: DetectionPipeline, owner: dict[str, Any]) -> dict[str, Any] | None:
    """TriggerAuthentication ``<pipeline>-redis`` pointing KEDA at the password Secret.

    Parameters
    ----------
    pipeline
        The parsed pipeline.
    owner
        Owner reference from :func:`owner_reference`.

    Returns
    -------
    dict or None
        The manifest, or None when Redis has no password.
    """
    ref = pipeline.spec.redis.password_secret_ref
    if ref is None:
        return None
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "TriggerAuthentication",
        "metadata": _metadata(pipeline, child_name(pipeline.name, "redis"), owner, labels(pipeline, "worker")),
        "spec": {"secretTargetRef": [{"parameter": "password", "name": ref.name, "key": ref.key}]},
    }


def worker_cpus(worker: WorkerSpec) -> int:
    """CPUs a worker container may use: its CPU limit, else its request, rounded up (at least 1)."""
    res = worker.resources
    quantity = (res.limits or {}).get("cpu") or (res.requests or {}).get("cpu")
    return max(1, math.ceil(parse_quantity(str(quantity)))) if quantity else 1


def worker_concurrency(worker: WorkerSpec) -> int:
    """Jobs at once per pod: ``concurrency``, else what ``detectflow worker`` chooses for the pod's CPUs.

    One job per CPU on one intra-op thread each (``max_batch`` per CPU with batching, so batches fill);
    on a GPU one job, or two batches' worth. The same rule as :func:`detectflow.worker.layout.choose_layout`,
    written out here so the thread count and the HPA target agree without reading the node.
    """
    if worker.concurrency is not None:
        return worker.concurrency
    gpu = worker.device == "gpu"
    max_batch = choose_max_batch(worker.max_batch or 0, gpu)
    if gpu:
        return 2 * max_batch if max_batch > 1 else 1
    return worker_cpus(worker) * max_batch


def target_per_replica(worker: WorkerSpec) -> int:
    """Unfinished jobs per pod the HPA aims for: ``targetPerReplica``, else the pod's concurrency."""
    return worker.autoscaling.target_per_replica or worker_concurrency(worker)


def render_scaled_object(pipeline: DetectionPipeline, worker: WorkerSpec, owner: dict[str, Any]) -> dict[str, Any]:
    """KEDA ScaledObject ``<pipeline>-<worker>`` scaling on the queue's unfinished + delayed work.

    Two redis triggers read HLEN of ``<prefix>:detect.<task>.msgs`` (waiting, prefetched and
    running jobs) and of ``.DQ.msgs`` (delayed retries, which only a running worker moves
    back); ``scalingModifiers`` sums them, so a retry alone activates a worker from zero.

    Parameters
    ----------
    pipeline
        The parsed pipeline.
    worker
        One entry of ``spec.workers``.
    owner
        Owner reference from :func:`owner_reference`.

    Returns
    -------
    dict
        The ScaledObject manifest.
    """
    target = redis_target(pipeline.spec.redis)
    per_replica = str(target_per_replica(worker))
    keys = queue_keys(redis_prefix(pipeline), worker.task.value)
    auth = render_trigger_authentication(pipeline, owner)
    triggers = []
    for trigger_name in ("unfinished", "delayed"):
        metadata = {
            "activationListLength": "0",
            "address": target.address,
            "databaseIndex": str(target.database),
            "listLength": per_replica,
            "listName": keys[trigger_name],
        }
        if target.tls:
            metadata["enableTLS"] = "true"
        if target.username:
            metadata["username"] = target.username
        trigger: dict[str, Any] = {"type": "redis", "name": trigger_name, "metadata": dict(sorted(metadata.items()))}
        if auth is not None:
            trigger["authenticationRef"] = {"name": auth["metadata"]["name"]}
        triggers.append(trigger)
    autoscaling = worker.autoscaling
    deployment = child_name(pipeline.name, worker.name)
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": _metadata(pipeline, deployment, owner, labels(pipeline, "worker", worker.name)),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
            "minReplicaCount": autoscaling.min_replicas,
            "maxReplicaCount": autoscaling.max_replicas,
            "pollingInterval": autoscaling.polling_interval_seconds,
            "cooldownPeriod": autoscaling.cooldown_seconds,
            "advanced": {
                "scalingModifiers": {
                    "formula": "unfinished + delayed",
                    "target": per_replica,
                    "activationTarget": "0",
                    "metricType": "AverageValue",
                }
            },
            "triggers": triggers,
        },
    }


def render_all(pipeline: DetectionPipeline) -> list[dict[str, Any]]:
    """Every child of ``pipeline``, in apply order (kind, then name).

    Parameters
    ----------
    pipeline
        The parsed pipeline.

    Returns
    -------
    list of dict
        ServiceAccounts, Service, Deployments, the API's PodDisruptionBudget, NetworkPolicy, Ingress,
        HTTPRoute and the PodMonitor (when asked for), TriggerAuthentication (with a password) and ScaledObjects.
    """
    owner = owner_reference(pipeline)
    out: list[dict[str, Any] | None] = [
        render_service_account(pipeline, owner, "api"),
        render_service_account(pipeline, owner, "worker"),
        render_api_service(pipeline, owner),
        render_api_deployment(pipeline, owner),
        render_api_pdb(pipeline, owner),
        render_api_network_policy(pipeline, owner),
        render_api_ingress(pipeline, owner),
        render_api_http_route(pipeline, owner),
        render_pod_monitor(pipeline, owner),
        render_trigger_authentication(pipeline, owner),
    ]
    for worker in pipeline.spec.workers:
        out.append(render_worker_deployment(pipeline, worker, owner))
        out.append(render_scaled_object(pipeline, worker, owner))
    order = {kind: i for i, (_, kind) in enumerate(CHILD_KINDS)}
    return sorted((m for m in out if m is not None), key=lambda m: (order[m["kind"]], m["metadata"]["name"]))
