{{/*
Helpers of the detectflow chart. Every define is namespaced `detectflow.`.
*/}}

{{/* Chart name, trimmed to a DNS label. */}}
{{- define "detectflow.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: `<release>-<chart>`, or the release name when it already contains the chart name.
Trimmed to 55 characters so that suffixes such as `-operator` and `-redis` still fit in 63.
*/}}
{{- define "detectflow.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 55 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 55 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 55 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* `chart-version` for the helm.sh/chart label. */}}
{{- define "detectflow.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "detectflow.labels" -}}
helm.sh/chart: {{ include "detectflow.chart" . }}
{{ include "detectflow.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: detectflow
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels (stable across upgrades); add app.kubernetes.io/component per object. */}}
{{- define "detectflow.selectorLabels" -}}
app.kubernetes.io/name: {{ include "detectflow.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Name of the operator's ServiceAccount. */}}
{{- define "detectflow.operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (printf "%s-operator" (include "detectflow.fullname" .)) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The operator (and API) image reference. */}}
{{- define "detectflow.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
The operator's RBAC rules: every API call it makes, nothing else. Must equal
detectflow.operator.rbac.RULES (deploy/rbac/); tests/chart/test_chart.py fails on drift.
*/}}
{{- define "detectflow.operator.rules" -}}
- apiGroups: ["detectflow.io"]
  resources: ["detectionpipelines"]
  verbs: ["list", "patch", "watch"]
- apiGroups: ["detectflow.io"]
  resources: ["detectionpipelines/status"]
  verbs: ["patch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
- apiGroups: [""]
  resources: ["serviceaccounts", "services"]
  verbs: ["create", "get", "patch"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["create", "delete", "get", "list", "patch"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["create", "delete", "get", "list", "patch"]
- apiGroups: ["networking.k8s.io"]
  resources: ["ingresses", "networkpolicies"]
  verbs: ["create", "delete", "get", "list", "patch"]
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes"]
  verbs: ["create", "delete", "get", "list", "patch"]
- apiGroups: ["monitoring.coreos.com"]
  resources: ["podmonitors"]
  verbs: ["create", "delete", "get", "list", "patch"]
- apiGroups: ["keda.sh"]
  resources: ["scaledobjects", "triggerauthentications"]
  verbs: ["create", "delete", "get", "list", "patch"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
{{- end }}

{{/* Redis: object name, Secret name and key, in-cluster address. */}}
{{- define "detectflow.redis.fullname" -}}
{{- printf "%s-redis" (include "detectflow.fullname" .) }}
{{- end }}

{{- define "detectflow.redis.secretName" -}}
{{- default (include "detectflow.redis.fullname" .) .Values.redis.auth.existingSecret }}
{{- end }}

{{- define "detectflow.redis.secretKey" -}}
{{- if .Values.redis.auth.existingSecret }}
{{- .Values.redis.auth.existingSecretPasswordKey }}
{{- else -}}
password
{{- end }}
{{- end }}

{{- define "detectflow.redis.address" -}}
{{- printf "%s.%s.svc:%d" (include "detectflow.redis.fullname" .) .Release.Namespace (int .Values.redis.port) }}
{{- end }}

{{/*
The Redis password: the value if set, else the one already in the release's Secret (so an
upgrade keeps it), else a new random one.
*/}}
{{- define "detectflow.redis.password" -}}
{{- if .Values.redis.auth.password }}
{{- .Values.redis.auth.password }}
{{- else }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "detectflow.redis.fullname" .) }}
{{- if and $existing $existing.data (hasKey $existing.data "password") }}
{{- index $existing.data "password" | b64dec }}
{{- else }}
{{- randAlphaNum 32 }}
{{- end }}
{{- end }}
{{- end }}

{{/* Name of the sample pipeline and the URL of its API Service. */}}
{{- define "detectflow.pipeline.name" -}}
{{- default .Release.Name .Values.pipeline.name | trunc 40 | trimSuffix "-" }}
{{- end }}

{{- define "detectflow.tests.apiUrl" -}}
{{- if .Values.tests.apiUrl }}
{{- .Values.tests.apiUrl | trimSuffix "/" }}
{{- else }}
{{- printf "http://%s-api.%s.svc:8000" (include "detectflow.pipeline.name" .) .Release.Namespace }}
{{- end }}
{{- end }}

{{/* The admin API key Secret: name and key. */}}
{{- define "detectflow.adminKey.secretName" -}}
{{- default (printf "%s-admin-key" (include "detectflow.fullname" .)) .Values.pipeline.adminKey.existingSecret }}
{{- end }}

{{/*
The admin API key: the one already in the release's Secret (so an upgrade keeps it), else a
new random one (`dfk_` + 40 alphanumerics, about 238 bits).
*/}}
{{- define "detectflow.adminKey.value" -}}
{{- $key := .Values.pipeline.adminKey.key }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "detectflow.adminKey.secretName" .) }}
{{- if and $existing $existing.data (hasKey $existing.data $key) }}
{{- index $existing.data $key | b64dec }}
{{- else }}
{{- printf "dfk_%s" (randAlphaNum 40) }}
{{- end }}
{{- end }}

{{/* Whether the sample pipeline gets an admin key Secret reference. */}}
{{- define "detectflow.adminKey.enabled" -}}
{{- if or .Values.pipeline.adminKey.existingSecret .Values.pipeline.adminKey.create }}true{{ end }}
{{- end }}

{{/* The Secret and key the helm test pod reads its API key from. */}}
{{- define "detectflow.tests.apiKeySecretName" -}}
{{- default (include "detectflow.adminKey.secretName" .) .Values.tests.apiKeySecret.name }}
{{- end }}

{{- define "detectflow.tests.apiKeySecretKey" -}}
{{- default .Values.pipeline.adminKey.key .Values.tests.apiKeySecret.key }}
{{- end }}
