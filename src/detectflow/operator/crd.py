"""The DetectionPipeline custom resource: spec/status models and the generated CRD."""

from __future__ import annotations

import copy
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, Self, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    WithJsonSchema,
    model_serializer,
    model_validator,
)
from pydantic.alias_generators import to_camel

from detectflow import __version__
from detectflow.config import Task

__all__ = [
    "GROUP",
    "VERSION",
    "KIND",
    "PLURAL",
    "SHORT_NAME",
    "DetectionPipeline",
    "DetectionPipelineSpec",
    "Condition",
    "DetectionPipelineStatus",
    "WorkerSpec",
    "WorkerStatus",
    "render_crd",
    "main",
]

GROUP = "detectflow.io"
VERSION = "v1alpha1"
KIND = "DetectionPipeline"
PLURAL = "detectionpipelines"
SINGULAR = "detectionpipeline"
SHORT_NAME = "dp"

#: Default tag of the API and worker images (the operator's own version).
DEFAULT_IMAGE_TAG = __version__

_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

#: A Kubernetes resource quantity ("500m", "1Gi", 2), as the apiserver's int-or-string.
Quantity = Annotated[
    str | int,
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$",
            "x-kubernetes-int-or-string": True,
        }
    ),
]


@dataclass(frozen=True)
class _Rule:
    """A cross-field rule: CEL for the apiserver, the same check in Python for the models."""

    cel: str
    message: str
    check: Callable[[Any], bool]
    field_path: str | None = None

    def as_schema(self) -> dict[str, str]:
        out = {"rule": self.cel, "message": self.message}
        if self.field_path:
            out["fieldPath"] = self.field_path
        return out


def _add_rules(schema: dict[str, Any], cls: type) -> None:
    rules = getattr(cls, "cel_rules", ())
    if rules:
        schema["x-kubernetes-validations"] = [r.as_schema() for r in rules]


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", json_schema_extra=_add_rules
    )
    cel_rules: ClassVar[tuple[_Rule, ...]] = ()

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        for rule in self.cel_rules:
            if not rule.check(self):
                raise ValueError(rule.message)
        return self


def _has(value: Any) -> bool:
    return value is not None


# --- spec ------------------------------------------------------------------------------


class ImageRef(_Model):
    """One container image."""

    repository: str = Field(min_length=1, max_length=255, description="Image repository, without the tag.")
    tag: str = Field(DEFAULT_IMAGE_TAG, min_length=1, max_length=128, description="Image tag.")


class ImageSpec(_Model):
    """Container images of the API and the workers."""

    api: ImageRef = Field(ImageRef(repository="detectflow/api"), description="Image running `detectflow api`.")
    worker: ImageRef = Field(
        ImageRef(repository="detectflow/worker"), description="Image of CPU workers (`detectflow worker`)."
    )
    gpu_worker: ImageRef = Field(
        ImageRef(repository="detectflow/worker-gpu"),
        description="Image of workers with `device: gpu` (onnxruntime with CUDA).",
    )
    pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        "IfNotPresent", description="imagePullPolicy of every container."
    )
    pull_secrets: list[Annotated[str, Field(pattern=_DNS_SUBDOMAIN, max_length=253)]] = Field(
        default_factory=list, max_length=8, description="Names of image pull Secrets in the pipeline's namespace."
    )


class SecretKeyRef(_Model):
    """A key of a Secret in the pipeline's namespace."""

    name: str = Field(pattern=_DNS_SUBDOMAIN, max_length=253, description="Secret name.")
    key: str = Field(
        "password", pattern=r"^[-._a-zA-Z0-9]+$", max_length=253, description="Key in the Secret's data."
    )


class RedisSpec(_Model):
    """The Redis holding the queues and the job records."""

    cel_rules = (
        _Rule(
            "has(self.address) != has(self.url)",
            "set exactly one of redis.address and redis.url",
            lambda s: _has(s.address) != _has(s.url),
        ),
        _Rule(
            "!has(self.url) || !has(self.database)",
            "redis.database cannot be combined with redis.url: put the database in the URL path",
            lambda s: not _has(s.url) or not _has(s.database),
            ".database",
        ),
        _Rule(
            "!has(self.url) || !has(self.tls)",
            "redis.tls cannot be combined with redis.url: use the rediss:// scheme",
            lambda s: not _has(s.url) or not _has(s.tls),
            ".tls",
        ),
        _Rule(
            "!has(self.url) || !self.url.matches('^rediss?://[^/@]*:[^/@]*@')",
            "redis.url must not contain a password: use redis.passwordSecretRef",
            lambda s: not _has(s.url) or not re.search(r"^rediss?://[^/@]*:[^/@]*@", s.url),
            ".url",
        ),
        _Rule(
            "!has(self.url) || self.url.matches('^rediss?://([^/@:]+@)?[^/@]+(/[0-9]{1,2})?$')",
            "redis.url must look like redis://host:6379/0 or rediss://host:6380/0",
            lambda s: not _has(s.url) or bool(re.search(r"^rediss?://([^/@:]+@)?[^/@]+(/[0-9]{1,2})?$", s.url)),
            ".url",
        ),
    )

    address: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9.\-\[\]:]+:[0-9]{1,5}$",
        max_length=255,
        description="host:port of Redis (e.g. `redis.default.svc:6379`). Exclusive with `url`.",
    )
    url: str | None = Field(
        None,
        max_length=512,
        description="redis:// or rediss:// URL with an optional /db path and no password. Exclusive with `address`.",
    )
    database: int | None = Field(None, ge=0, le=15, description="Database index with `address` (default 0).")
    tls: bool | None = Field(None, description="Use TLS with `address` (default false).")
    password_secret_ref: SecretKeyRef | None = Field(
        None, description="Secret key holding the Redis password; also used by KEDA via a TriggerAuthentication."
    )


#: A loosely validated Kubernetes object (EnvVar, EnvFromSource, NetworkPolicyPeer): the
#: apiserver checks the rendered Deployment or NetworkPolicy, so the CRD only requires an object.
LooseObject = Annotated[
    dict[str, Any],
    WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
]


class EnvVar(_Model):
    """One container environment variable (a Pod spec's EnvVar; ``valueFrom`` is not checked here)."""

    name: str = Field(pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$", max_length=253, description="Variable name.")
    value: str | None = Field(None, description="Literal value.")
    value_from: LooseObject | None = Field(
        None, description="A Pod spec's valueFrom (secretKeyRef, configMapKeyRef, fieldRef, resourceFieldRef)."
    )


class AuthSpec(_Model):
    """API keys on Kubernetes: the admin key the API creates at start."""

    admin_key_secret_ref: SecretKeyRef | None = Field(
        None,
        description="Secret key holding an admin API key (DETECTFLOW_ADMIN_KEY, as a secretKeyRef: never a literal); "
        "the API stores it in Redis at start. The Secret needs the label `detectflow.io/secret: \"true\"`.",
    )


class PodDisruptionBudgetSpec(_Model):
    """A PodDisruptionBudget of the API pods."""

    min_available: int | None = Field(
        None, ge=0, le=50, description="API pods kept during voluntary disruptions (drains); unset: no PDB."
    )


class WebhooksSpec(_Model):
    """Webhook delivery (the job's `webhook_url`)."""

    secret_ref: SecretKeyRef | None = Field(
        None,
        description="Secret key holding the HMAC-SHA256 key signing webhooks (DETECTFLOW_WEBHOOK_SECRET on the API "
        "and the workers); unset: requests with a webhook_url are refused. Needs the label "
        "`detectflow.io/secret: \"true\"`.",
    )


class NetworkPolicySpec(_Model):
    """A NetworkPolicy on the API pods."""

    enabled: bool = Field(False, description="Render a NetworkPolicy selecting the API pods.")
    api_ingress_from: list[LooseObject] = Field(
        default_factory=list,
        max_length=32,
        description="NetworkPolicyPeers (podSelector, namespaceSelector, ipBlock) allowed to reach the API port; "
        "empty: from anywhere. The metrics port is open only to `metricsIngressFrom`.",
    )
    metrics_ingress_from: list[LooseObject] = Field(
        default_factory=list,
        max_length=32,
        description="NetworkPolicyPeers allowed to reach the API's metrics port (e.g. Prometheus); empty: nobody.",
    )


class ResourceRequirements(_Model):
    """Container resources, as in a Pod spec."""

    requests: dict[str, Quantity] = Field(default_factory=dict, description="Resource requests.")
    limits: dict[str, Quantity] = Field(default_factory=dict, description="Resource limits.")


class IngressTLS(_Model):
    """TLS of the API's Ingress: the certificate Secret (cert-manager or your own) for ``host``."""

    secret_name: str = Field(pattern=_DNS_SUBDOMAIN, max_length=253, description="Secret of type kubernetes.io/tls.")


class IngressSpec(_Model):
    """An Ingress in front of the API Service."""

    cel_rules = (
        _Rule(
            "!has(self.tls) || has(self.host)",
            "ingress.tls needs ingress.host",
            lambda s: not _has(s.tls) or _has(s.host),
            ".tls",
        ),
    )

    enabled: bool = Field(False, description="Render Ingress `<pipeline>-api`.")
    class_name: str | None = Field(
        None, pattern=_DNS_SUBDOMAIN, max_length=253, description="IngressClass (empty: the cluster's default class)."
    )
    host: str | None = Field(
        None, pattern=_DNS_SUBDOMAIN, max_length=253, description="Host name; empty: every host (no public URL derived)."
    )
    path: str = Field("/", pattern=r"^/\S*$", max_length=256, description="Path prefix routed to the API.")
    annotations: dict[str, str] = Field(
        default_factory=dict, description="Annotations of the Ingress (e.g. the controller's, cert-manager's issuer)."
    )
    tls: IngressTLS | None = Field(None, description="Serve `host` over TLS with this Secret (the public URL is https).")


class ParentReference(_Model):
    """A Gateway (or other parent) an HTTPRoute attaches to (Gateway API ParentReference)."""

    name: str = Field(pattern=_DNS_SUBDOMAIN, max_length=253, description="Gateway name.")
    namespace: str | None = Field(None, pattern=_DNS_LABEL, max_length=63, description="Its namespace (default: the pipeline's).")
    section_name: str | None = Field(None, pattern=_DNS_LABEL, max_length=253, description="Listener name.")
    port: int | None = Field(None, ge=1, le=65535, description="Listener port.")
    group: str | None = Field(None, max_length=253, description="Parent API group (default gateway.networking.k8s.io).")
    kind: str | None = Field(None, max_length=63, description="Parent kind (default Gateway).")


class HTTPRouteSpec(_Model):
    """A Gateway API HTTPRoute to the API Service."""

    cel_rules = (
        _Rule(
            "!self.enabled || size(self.parentRefs) > 0",
            "httpRoute.enabled needs at least one parentRef",
            lambda s: not s.enabled or bool(s.parent_refs),
            ".parentRefs",
        ),
    )

    enabled: bool = Field(False, description="Render HTTPRoute `<pipeline>-api`.")
    parent_refs: list[ParentReference] = Field(
        default_factory=list, max_length=16, description="Gateways (listeners) the route attaches to."
    )
    hostnames: list[Annotated[str, Field(pattern=_DNS_SUBDOMAIN, max_length=253)]] = Field(
        default_factory=list, max_length=16, description="Host names; the first makes the public URL (https)."
    )
    path: str = Field("/", pattern=r"^/\S*$", max_length=256, description="Path prefix routed to the API.")
    annotations: dict[str, str] = Field(default_factory=dict, description="Annotations of the HTTPRoute.")


class ApiSpec(_Model):
    """The REST API Deployment."""

    replicas: int = Field(1, ge=1, le=50, description="API pods.")
    resources: ResourceRequirements = Field(
        ResourceRequirements(requests={"cpu": "100m", "memory": "256Mi"}, limits={"memory": "512Mi"}),
        description="Resources of the API container.",
    )
    max_upload_bytes: int = Field(
        20 * 1024 * 1024, ge=1024, le=1024**3, description="Largest accepted upload (DETECTFLOW_API_MAX_UPLOAD_BYTES)."
    )
    max_queue_depth: int = Field(
        1000, ge=1, le=1_000_000, description="Unfinished jobs of a task at which POST answers 429."
    )
    result_ttl_seconds: int = Field(
        86400,
        alias="resultTTLSeconds", ge=60, le=30 * 86400, description="How long jobs and results are kept (DETECTFLOW_JOB_TTL_SECONDS)."
    )
    auth: AuthSpec = Field(default_factory=AuthSpec, description="API keys.")
    pod_disruption_budget: PodDisruptionBudgetSpec = Field(
        default_factory=PodDisruptionBudgetSpec, description="PodDisruptionBudget of the API pods."
    )
    env: list[EnvVar] = Field(
        default_factory=list, max_length=64, description="Extra environment variables of the API container."
    )
    env_from: list[LooseObject] = Field(
        default_factory=list, max_length=16, description="EnvFromSources (configMapRef, secretRef) of the API container."
    )
    public_url: str | None = Field(
        None,
        pattern=r"^https?://[^/\s]+(/\S*)?$",
        max_length=2048,
        description="Base URL in job links and webhooks (DETECTFLOW_API_PUBLIC_URL); default: from `ingress` "
        "(https with tls) or `httpRoute` (https), else each request's own.",
    )
    forwarded_allow_ips: list[str] = Field(
        default_factory=list,
        max_length=32,
        description="Proxies (IPs or CIDRs, e.g. the ingress controller's pod network) whose X-Forwarded-* headers "
        "the API trusts (DETECTFLOW_API_FORWARDED_ALLOW_IPS); empty: none.",
    )
    ingress: IngressSpec = Field(default_factory=IngressSpec, description="Ingress of the API.")
    http_route: HTTPRouteSpec = Field(
        default_factory=HTTPRouteSpec, alias="httpRoute", description="Gateway API HTTPRoute of the API."
    )
    node_selector: dict[str, str] = Field(default_factory=dict, description="API pod nodeSelector.")
    tolerations: list[Toleration] = Field(default_factory=list, max_length=16, description="API pod tolerations.")
    affinity: LooseObject | None = Field(None, description="API pod affinity (a Pod spec's Affinity).")
    topology_spread_constraints: list[LooseObject] = Field(
        default_factory=list, max_length=8, description="API pod topologySpreadConstraints (e.g. across zones)."
    )
    pod_annotations: dict[str, str] = Field(default_factory=dict, description="Annotations of the API pods.")


class ModelSpec(_Model):
    """A detection model: a built-in name, or a URI pinned by its sha256."""

    cel_rules = (
        _Rule(
            "has(self.name) != has(self.uri)",
            "set exactly one of model.name and model.uri",
            lambda s: _has(s.name) != _has(s.uri),
        ),
        _Rule(
            "!has(self.uri) || has(self.sha256)",
            "model.uri requires model.sha256",
            lambda s: not _has(s.uri) or _has(s.sha256),
            ".sha256",
        ),
        _Rule(
            "!has(self.sha256) || has(self.uri)",
            "model.sha256 only applies to model.uri",
            lambda s: not _has(s.sha256) or _has(s.uri),
            ".sha256",
        ),
        _Rule(
            "!has(self.postprocessor) || has(self.uri)",
            "model.postprocessor only applies to model.uri",
            lambda s: not _has(s.postprocessor) or _has(s.uri),
            ".postprocessor",
        ),
    )

    name: str | None = Field(
        None, pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=63, description="Built-in model name."
    )
    uri: str | None = Field(
        None, pattern=r"^https?://\S+$", max_length=2048, description="http(s) URI of an ONNX file."
    )
    sha256: str | None = Field(None, pattern=r"^[a-f0-9]{64}$", description="Hex sha256 of the file at `uri`.")
    postprocessor: Literal["retinaface", "nanodet", "yolo"] | None = Field(
        None,
        description="Output layout of the file at `uri`; default retinaface for face, yolo (YOLOv8/YOLO11) for object.",
    )


class Toleration(_Model):
    """A Pod toleration."""

    key: str | None = Field(None, max_length=316, description="Taint key; empty with Exists matches all.")
    operator: Literal["Exists", "Equal"] | None = Field(None, description="Exists or Equal (default Equal).")
    value: str | None = Field(None, max_length=63, description="Taint value for Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        None, description="Taint effect; empty matches all."
    )
    toleration_seconds: int | None = Field(None, description="How long a NoExecute taint is tolerated.")


class AutoscalingSpec(_Model):
    """KEDA scaling of one worker on its queue's unfinished work."""

    cel_rules = (
        _Rule(
            "self.minReplicas <= self.maxReplicas",
            "autoscaling.minReplicas must be <= autoscaling.maxReplicas",
            lambda s: s.min_replicas <= s.max_replicas,
            ".minReplicas",
        ),
    )

    min_replicas: int = Field(1, ge=0, le=100, description="Fewest pods; 0 scales to zero when the queue is idle.")
    max_replicas: int = Field(4, ge=1, le=100, description="Most pods.")
    target_per_replica: int | None = Field(
        None, ge=1, le=10000, description="Unfinished jobs per pod the HPA aims for (default: the pod's `concurrency`)."
    )
    polling_interval_seconds: int = Field(30, ge=1, le=3600, description="How often KEDA reads the queue.")
    cooldown_seconds: int = Field(
        300, ge=0, le=86400, description="Idle time before scaling to zero (only with minReplicas 0)."
    )


class WorkerSpec(_Model):
    """One pool of Dramatiq workers serving one task."""

    cel_rules = (
        _Rule(
            "self.device == 'gpu' || !has(self.gpus)",
            "gpus only applies to device gpu",
            lambda s: s.device == "gpu" or not _has(s.gpus),
            ".gpus",
        ),
        _Rule(
            "self.name != 'api'",
            "worker name 'api' is reserved for the API Deployment",
            lambda s: s.name != "api",
            ".name",
        ),
    )

    name: str = Field(pattern=_DNS_LABEL, min_length=1, max_length=40, description="Worker name (DNS label).")
    task: Task = Field(description="Detection task: face or object; the worker consumes queue detect.<task>.")
    model: ModelSpec | None = Field(None, description="Model to load (default: the task's built-in model).")
    device: Literal["cpu", "gpu"] = Field("cpu", description="cpu, or gpu (GPU image, nvidia.com/gpu limit).")
    gpus: int | None = Field(None, ge=1, le=8, description="nvidia.com/gpu per pod with device gpu (default 1).")
    resources: ResourceRequirements = Field(
        ResourceRequirements(requests={"cpu": "500m", "memory": "1Gi"}, limits={"memory": "2Gi"}),
        description="Resources of the worker container.",
    )
    concurrency: int | None = Field(
        None,
        ge=1,
        le=256,
        description="Jobs at once per pod (threads, also the Dramatiq prefetch); default: one per CPU of the "
        "container's limit (else of its request, at least 1), times maxBatch when batching; on a GPU 1, or 2 x maxBatch.",
    )
    max_batch: int | None = Field(
        None,
        ge=1,
        le=64,
        description="Dynamic batching: most inputs of concurrent jobs in one model run (1: off); default: 8 on a GPU, "
        "off on CPU.",
    )
    max_batch_delay_ms: float | None = Field(
        None, ge=0, le=1000, description="Longest an input waits for others to fill its batch, ms (default 2)."
    )
    time_limit_seconds: int = Field(120, ge=1, le=86400, description="Longest one job may run.")
    retries: int = Field(3, ge=0, le=20, description="Retries of a failed job.")
    node_selector: dict[str, str] = Field(default_factory=dict, description="Pod nodeSelector.")
    tolerations: list[Toleration] = Field(default_factory=list, max_length=16, description="Pod tolerations.")
    autoscaling: AutoscalingSpec = Field(default_factory=AutoscalingSpec, description="KEDA scaling.")
    env: list[EnvVar] = Field(
        default_factory=list, max_length=64, description="Extra environment variables of the worker container."
    )
    env_from: list[LooseObject] = Field(
        default_factory=list,
        max_length=16,
        description="EnvFromSources (configMapRef, secretRef) of the worker container.",
    )


class PodMonitorSpec(_Model):
    """A PodMonitor (Prometheus operator) of the pipeline's API and worker pods."""

    enabled: bool = Field(False, description="Render PodMonitor `<pipeline>` (needs the Prometheus operator's CRDs).")
    interval: str = Field("30s", pattern=r"^([0-9]+(ms|s|m|h))+$", description="Scrape interval.")
    labels: dict[str, str] = Field(
        default_factory=dict, description="Extra labels of the PodMonitor (e.g. the one your Prometheus selects)."
    )


class MonitoringSpec(_Model):
    """Prometheus scraping of the pipeline (its alerts and dashboard come with the chart)."""

    pod_monitor: PodMonitorSpec = Field(default_factory=PodMonitorSpec, description="PodMonitor of the pods.")


class DetectionPipelineSpec(_Model):
    """Desired state of a detection pipeline."""

    cel_rules = (
        _Rule(
            "self.workers.all(w, self.workers.filter(x, x.task == w.task).size() == 1)",
            "each task may have only one worker: two workers on one task would share its queue",
            lambda s: len({w.task for w in s.workers}) == len(s.workers),
            ".workers",
        ),
        _Rule(
            # Also enforced by the list-map key; repeated here for files rendered offline.
            "self.workers.all(w, self.workers.filter(x, x.name == w.name).size() == 1)",
            "worker names must be unique",
            lambda s: len({w.name for w in s.workers}) == len(s.workers),
            ".workers",
        ),
    )

    image: ImageSpec = Field(default_factory=ImageSpec, description="Container images.")
    redis: RedisSpec = Field(description="Redis connection.")
    api: ApiSpec = Field(default_factory=ApiSpec, description="REST API.")
    webhooks: WebhooksSpec = Field(default_factory=WebhooksSpec, description="Webhook signing.")
    network_policy: NetworkPolicySpec = Field(
        default_factory=NetworkPolicySpec, description="NetworkPolicy of the API pods."
    )
    monitoring: MonitoringSpec = Field(default_factory=MonitoringSpec, description="Prometheus scraping.")
    workers: list[WorkerSpec] = Field(
        min_length=1,
        max_length=16,
        description="Worker pools, each with its own Deployment and ScaledObject.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )


# --- status ----------------------------------------------------------------------------


class Condition(_Model):
    """A status condition (metav1.Condition)."""

    type: str = Field(max_length=316, description="Ready, APIReady, WorkersReady, AutoscalingReady or Degraded.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(max_length=1024, description="CamelCase reason.")
    message: str = Field("", max_length=32768, description="Human-readable detail.")
    last_transition_time: str = Field(description="When status last changed (RFC 3339).")
    observed_generation: int | None = Field(None, description="Spec generation the condition was computed from.")


class WorkerStatus(_Model):
    """Observed state of one worker pool."""

    name: str = Field(description="Worker name.")
    task: str = Field(description="Task.")
    desired_replicas: int = Field(0, description="Replicas the Deployment (or KEDA) asks for.")
    ready_replicas: int = Field(0, description="Ready pods.")
    queue_depth: int | None = Field(
        None, description="Unfinished jobs: waiting, in flight and waiting for a retry (when Redis is reachable)."
    )

    @model_serializer(mode="wrap")
    def _omit_unknown_depth(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # An unreadable depth is left out of the worker's entry (not written as null).
        out = handler(self)
        if self.queue_depth is None:
            out.pop("queueDepth", None)
            out.pop("queue_depth", None)
        return out


class DetectionPipelineStatus(_Model):
    """Observed state of a detection pipeline."""

    model_config = ConfigDict(extra="ignore")

    observed_generation: int | None = Field(None, description="Last spec generation reconciled.")
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready, APIReady, WorkersReady, AutoscalingReady, Degraded.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    workers: list[WorkerStatus] = Field(
        default_factory=list,
        description="Per-worker replicas and queue depth.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    ready_workers: str | None = Field(None, description="Ready worker pools / all pools, e.g. 2/2.")
    queue_depth: int | None = Field(None, description="Unfinished jobs over all workers.")
    endpoint: str | None = Field(None, description="In-cluster URL of the API.")


_NAME_RULE = _Rule(
    "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && self.metadata.name.size() <= 40",
    "metadata.name must be a DNS label of at most 40 characters starting with a letter "
    "(it names Services and Deployments)",
    lambda s: bool(re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", s.name)) and len(s.name) <= 40,
)


class DetectionPipeline(_Model):
    """A parsed DetectionPipeline object (metadata reduced to what the operator uses)."""

    model_config = ConfigDict(extra="ignore")
    cel_rules = (_NAME_RULE,)

    name: str
    namespace: str
    uid: str = ""
    generation: int = 0
    spec: DetectionPipelineSpec

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> DetectionPipeline:
        """Parse a DetectionPipeline object as returned by the API server.

        Parameters
        ----------
        body
            The full object (``metadata``, ``spec``).

        Returns
        -------
        DetectionPipeline
            The validated pipeline, defaults filled in.

        Raises
        ------
        pydantic.ValidationError
            If the spec does not match the schema.
        """
        meta = body.get("metadata") or {}
        return cls.model_validate(
            {
                "name": meta.get("name", ""),
                "namespace": meta.get("namespace") or "default",
                "uid": meta.get("uid", ""),
                "generation": meta.get("generation") or 0,
                "spec": body.get("spec") or {},
            }
        )


# --- CRD generation --------------------------------------------------------------------

_KEEP = {
    "type",
    "description",
    "default",
    "enum",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "pattern",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "required",
    "nullable",
}


def _structural(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Turn one pydantic JSON-schema node into a Kubernetes structural schema node."""
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").split("/")[-1]]
        node = {**target, **{k: v for k, v in node.items() if k in ("description", "default")}}
    if "anyOf" in node and not node.get("x-kubernetes-int-or-string"):
        options = [o for o in node.pop("anyOf") if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"unsupported union in CRD schema: {options}")
        inner = _structural(options[0], defs)
        outer = {k: v for k, v in node.items() if k in ("description", "default") and v is not None}
        return {**inner, **outer}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _KEEP and value is not None:
            out[key] = value
        elif key.startswith("x-kubernetes-"):
            out[key] = copy.deepcopy(value)
        elif key == "anyOf":
            out[key] = value
        elif key == "const":
            out["enum"] = [value]
    if "properties" in node:
        out["type"] = "object"
        props = {}
        for name, sub in node["properties"].items():
            prop = _structural(sub, defs)
            props[name] = prop
        out["properties"] = props
    elif isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = _structural(node["additionalProperties"], defs)
    if "items" in node:
        out["items"] = _structural(node["items"], defs)
    if not out.get("required"):
        out.pop("required", None)
    return out


def _model_in(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The model class inside ``annotation`` (``M``, ``M | None``, ``list[M]``) and whether it is a list."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    for arg in get_args(annotation):
        found, is_list = _model_in(arg)
        if found is not None:
            return found, is_list or get_origin(annotation) is list
    return None, False


def _fill_object_defaults(node: dict[str, Any], model: type[BaseModel]) -> None:
    """Give every defaulted sub-object its complete default.

    The apiserver checks CEL rules against a `default` as written (without the nested
    defaults), so `default: {}` would fail e.g. minReplicas <= maxReplicas.
    """
    for name, info in model.model_fields.items():
        prop = node["properties"][info.alias or name]
        sub, is_list = _model_in(info.annotation)
        if sub is None:
            continue
        if is_list:
            _fill_object_defaults(prop["items"], sub)
            continue
        default = info.default_factory() if info.default_factory else info.default  # type: ignore[call-arg]
        if isinstance(default, BaseModel):
            prop["default"] = default.model_dump(by_alias=True, exclude_none=True, mode="json")
        _fill_object_defaults(prop, sub)


def _schema_of(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    schema = _structural(raw, raw.get("$defs", {}))
    _fill_object_defaults(schema, model)
    return schema


def render_crd() -> dict[str, Any]:
    """Build the DetectionPipeline CustomResourceDefinition from the models.

    Returns
    -------
    dict
        The CRD manifest (apiextensions.k8s.io/v1).
    """
    spec = _schema_of(DetectionPipelineSpec)
    status = _schema_of(DetectionPipelineStatus)
    spec.pop("default", None)
    status.pop("default", None)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{PLURAL}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "detectflow", "app.kubernetes.io/part-of": "detectflow"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": [SHORT_NAME],
                "categories": ["detectflow"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {
                            "name": "Ready",
                            "type": "string",
                            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
                        },
                        {"name": "Workers", "type": "string", "jsonPath": ".status.readyWorkers"},
                        {"name": "Queue", "type": "integer", "jsonPath": ".status.queueDepth"},
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                        {
                            "name": "Reason",
                            "type": "string",
                            "priority": 1,
                            "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
                        },
                        {"name": "Endpoint", "type": "string", "priority": 1, "jsonPath": ".status.endpoint"},
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "A detection pipeline: REST API, workers and their autoscaling.",
                            "required": ["spec"],
                            "x-kubernetes-validations": [_NAME_RULE.as_schema()],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec,
                                "status": status,
                            },
                        }
                    },
                }
            ],
        },
    }


_FIRST = ("type", "description", "default")
_LAST = ("required", "properties", "additionalProperties", "items", "x-kubernetes-validations")


def _ordered(node: Any) -> Any:
    """Order schema keys the same way every time (type first, children last)."""
    if isinstance(node, list):
        return [_ordered(item) for item in node]
    if not isinstance(node, dict):
        return node
    if "openAPIV3Schema" in node or "apiVersion" in node or "group" in node or "name" in node and "served" in node:
        return {k: _ordered(v) for k, v in node.items()}
    first = [k for k in _FIRST if k in node]
    last = [k for k in _LAST if k in node]
    middle = sorted(k for k in node if k not in first and k not in last)
    if "properties" in node and "type" in node:
        props = {k: _ordered(v) for k, v in node["properties"].items()}
    else:
        props = None
    out = {}
    for key in first + middle + last:
        out[key] = props if key == "properties" and props is not None else _ordered(node[key])
    return out


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_yaml(*documents: Any) -> str:
    """Dump manifests as block YAML without anchors, in the order given."""
    return yaml.dump_all(list(documents), Dumper=_Dumper, sort_keys=False, width=120)


def dump_crd() -> str:
    """The CRD as the YAML text committed in ``crds/detectionpipeline.yaml``."""
    header = "# Generated by `python -m detectflow.operator.crd`; do not edit by hand.\n"
    crd = render_crd()
    schema = crd["spec"]["versions"][0]["schema"]
    schema["openAPIV3Schema"] = _ordered(schema["openAPIV3Schema"])
    return header + dump_yaml(crd)


def main() -> None:
    """Print the CRD YAML (``python -m detectflow.operator.crd > crds/detectionpipeline.yaml``)."""
    sys.stdout.write(dump_crd())


if __name__ == "__main__":
    main()
