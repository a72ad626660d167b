{{/*
Names and labels shared by every template.

Object names are "<fullname>-<component>". The full name is capped at 40 characters so
that the longest suffix ("-otel-collector") and a StatefulSet's pod revision label still
fit the 63-character limit of names and label values.
*/}}

{{- define "stack.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "stack.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "<fullname>-<component>"; call with (dict "ctx" $ "component" "redis"). */}}
{{- define "stack.componentName" -}}
{{- printf "%s-%s" (include "stack.fullname" .ctx) .component -}}
{{- end -}}

{{- define "stack.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Selector labels of a component: stable for the life of a release (a Deployment's or a
StatefulSet's selector cannot change). Call with (dict "ctx" $ "component" "operator").
*/}}
{{- define "stack.selectorLabels" -}}
app.kubernetes.io/name: {{ include "stack.name" .ctx | quote }}
app.kubernetes.io/instance: {{ .ctx.Release.Name | quote }}
app.kubernetes.io/component: {{ .component | quote }}
{{- end -}}

{{/*
Every label of an object of a component: the selector labels plus version, part-of and
managed-by. Call with (dict "ctx" $ "component" "redis"); "version" (an image tag) is
optional and defaults to the chart's appVersion.
*/}}
{{- define "stack.labels" -}}
{{ include "stack.selectorLabels" . }}
app.kubernetes.io/version: {{ (default .ctx.Chart.AppVersion .version) | replace "+" "_" | trunc 63 | quote }}
app.kubernetes.io/part-of: stackyard
app.kubernetes.io/managed-by: {{ .ctx.Release.Service | quote }}
helm.sh/chart: {{ include "stack.chart" .ctx | quote }}
{{- end -}}

{{/*
An image reference from {registry, repository, tag, digest}; an empty tag means the
chart's appVersion. Call with (dict "ctx" $ "image" .Values.operator.image).
*/}}
{{- define "stack.image" -}}
{{- $tag := default .ctx.Chart.AppVersion .image.tag -}}
{{- $repository := .image.repository -}}
{{- if .image.registry -}}
{{- $repository = printf "%s/%s" .image.registry .image.repository -}}
{{- end -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository $tag -}}
{{- end -}}
{{- end -}}

{{/* The version label of a component: its image tag, or the appVersion. */}}
{{- define "stack.imageVersion" -}}
{{- default .ctx.Chart.AppVersion .image.tag -}}
{{- end -}}

{{- define "stack.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The pod-level scheduling fields of a component's values: nodeSelector, tolerations, affinity, priorityClassName. */}}
{{- define "stack.scheduling" -}}
{{- with .priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The name of the default Stack. */}}
{{- define "stack.stackName" -}}
{{- default (include "stack.fullname" .) .Values.stack.name -}}
{{- end -}}

{{/* The Secret holding the backends' URLs for Stacks: Redis URL and MongoDB URI. */}}
{{- define "stack.backendsSecretName" -}}
{{- include "stack.componentName" (dict "ctx" . "component" "backends") -}}
{{- end -}}

{{- define "stack.redisSecretName" -}}
{{- default (include "stack.componentName" (dict "ctx" . "component" "redis")) .Values.redis.auth.existingSecret -}}
{{- end -}}

{{- define "stack.mongodbSecretName" -}}
{{- default (include "stack.componentName" (dict "ctx" . "component" "mongodb")) .Values.mongodb.auth.existingSecret -}}
{{- end -}}

{{/* The password key in the Redis/MongoDB Secret: "password" in the chart's own Secret. */}}
{{- define "stack.redisSecretKey" -}}
{{- if .Values.redis.auth.existingSecret -}}{{ .Values.redis.auth.existingSecretPasswordKey }}{{- else -}}password{{- end -}}
{{- end -}}

{{- define "stack.mongodbSecretKey" -}}
{{- if .Values.mongodb.auth.existingSecret -}}{{ .Values.mongodb.auth.existingSecretPasswordKey }}{{- else -}}password{{- end -}}
{{- end -}}

{{/*
A value of an existing Secret in the release namespace, decoded; empty when the Secret or
the key does not exist, or when there is no cluster to ask (helm template, --dry-run).
Call with (dict "ctx" $ "name" "x" "key" "password").
*/}}
{{- define "stack.lookupSecretValue" -}}
{{- $secret := lookup "v1" "Secret" .ctx.Release.Namespace .name -}}
{{- if and $secret $secret.data (hasKey $secret.data .key) -}}
{{- index $secret.data .key | b64dec -}}
{{- end -}}
{{- end -}}

{{/* A password for a URL's userinfo: percent-encoded, space as %20 rather than "+". */}}
{{- define "stack.urlPassword" -}}
{{- urlquery . | replace "+" "%20" -}}
{{- end -}}

{{/*
Peers that may reach a backend (Redis, MongoDB): this release's pods, and the api and
worker pods that the operator renders for Stacks in this namespace (they carry
part-of=stackyard and managed-by=stackyard-operator, whatever their Stack is called).
*/}}
{{- define "stack.backendPeers" -}}
- podSelector:
    matchLabels:
      app.kubernetes.io/instance: {{ .Release.Name | quote }}
      app.kubernetes.io/part-of: stackyard
- podSelector:
    matchLabels:
      app.kubernetes.io/part-of: stackyard
      app.kubernetes.io/managed-by: stackyard-operator
{{- end -}}

{{/* Whether the operator holds a Lease: asked for, or needed because there are several replicas. */}}
{{- define "stack.leaderElection" -}}
{{- if or .Values.operator.leaderElection.enabled (gt (int .Values.operator.replicas) 1) -}}true{{- end -}}
{{- end -}}

{{- define "stack.leaseName" -}}
{{- include "stack.componentName" (dict "ctx" . "component" "operator") -}}
{{- end -}}

{{/* redis.conf of the chart's Redis: no secrets (the password is a command-line argument). */}}
{{- define "stack.redisConf" -}}
# redis.conf written by the stackyard chart; the password is passed as --requirepass.
bind * -::*
port 6379
dir /data
daemonize no
# Durable queues and tokens: every write goes to the append-only file.
appendonly yes
appendfsync {{ .Values.redis.config.appendfsync }}
# Evicting a job or a session silently would lose it: refuse writes instead when full.
maxmemory-policy {{ .Values.redis.config.maxmemoryPolicy }}
{{- with .Values.redis.config.maxmemory }}
maxmemory {{ . }}
{{- end }}
{{- with .Values.redis.config.extra }}
{{ . }}
{{- end }}
{{- end -}}

{{/*
The collector's config: OTLP in (gRPC and HTTP), memory_limiter then batch in every
pipeline, health_check for the probes, and the exporters chosen in values: debug and/or
OTLP (otlp over gRPC, otlphttp over HTTP) for traces, metrics and logs, plus prometheus
for metrics only. Exporter headers are "${env:OTLP_HEADER_<i>}" references: their values
come from Secrets through the container's environment (otel-collector.yaml), never from
this ConfigMap. otelCollector.configOverrides is deep-merged over the result.
*/}}
{{- define "stack.otelConfig" -}}
{{- $values := .Values.otelCollector -}}
{{- $exporters := dict -}}
{{- if $values.debugExporter.enabled -}}
{{- $_ := set $exporters "debug" (dict "verbosity" $values.debugExporter.verbosity) -}}
{{- end -}}
{{- with $values.otlpExporter.endpoint -}}
{{- $exporter := dict "endpoint" . -}}
{{- if $values.otlpExporter.insecure -}}
{{- $_ := set $exporter "tls" (dict "insecure" true) -}}
{{- end -}}
{{- with $values.otlpExporter.headers -}}
{{- $headers := dict -}}
{{- range $i, $header := . -}}
{{- $_ := set $headers $header.name (printf "${env:OTLP_HEADER_%d}" $i) -}}
{{- end -}}
{{- $_ := set $exporter "headers" $headers -}}
{{- end -}}
{{- $_ := set $exporters (ternary "otlp" "otlphttp" (eq $values.otlpExporter.protocol "grpc")) $exporter -}}
{{- end -}}
{{- $everySignal := keys $exporters | sortAlpha -}}
{{- $metricsOnly := list -}}
{{- if $values.prometheusExporter.enabled -}}
{{- $prometheus := dict
  "endpoint" (printf "0.0.0.0:%d" (int $values.prometheusExporter.port))
  "translation_strategy" "UnderscoreEscapingWithSuffixes" -}}
{{- with $values.prometheusExporter.namespace -}}
{{- $_ := set $prometheus "namespace" . -}}
{{- end -}}
{{- with $values.prometheusExporter.resourceLabels -}}
{{- $_ := set $prometheus "resource_constant_labels" (dict "included" .) -}}
{{- end -}}
{{- $_ := set $exporters "prometheus" $prometheus -}}
{{- $metricsOnly = list "prometheus" -}}
{{- end -}}
{{- $processors := list "memory_limiter" "batch" -}}
{{- $pipeline := dict "receivers" (list "otlp") "processors" $processors "exporters" $everySignal -}}
{{- $metrics := dict "receivers" (list "otlp") "processors" $processors "exporters" (concat $everySignal $metricsOnly | sortAlpha) -}}
{{- $config := dict
  "receivers" (dict "otlp" (dict "protocols" (dict
    "grpc" (dict "endpoint" (printf "0.0.0.0:%d" (int $values.service.grpcPort)))
    "http" (dict "endpoint" (printf "0.0.0.0:%d" (int $values.service.httpPort))))))
  "processors" (dict
    "memory_limiter" (dict "check_interval" "1s" "limit_percentage" $values.memoryLimiter.limitPercentage "spike_limit_percentage" $values.memoryLimiter.spikeLimitPercentage)
    "batch" (dict))
  "exporters" $exporters
  "extensions" (dict "health_check" (dict "endpoint" (printf "0.0.0.0:%d" (int $values.healthPort))))
  "service" (dict
    "extensions" (list "health_check")
    "pipelines" (dict "traces" $pipeline "metrics" $metrics "logs" (deepCopy $pipeline)))
-}}
{{- mergeOverwrite $config (deepCopy $values.configOverrides) | toYaml -}}
{{- end -}}

{{/*
The OTLP/HTTP URL of the release's collector: the default Stack's telemetry endpoint and
the operator's OTEL_EXPORTER_OTLP_ENDPOINT.
*/}}
{{- define "stack.collectorEndpoint" -}}
{{- printf "http://%s.%s.svc:%d" (include "stack.componentName" (dict "ctx" . "component" "otel-collector")) .Release.Namespace (int .Values.otelCollector.service.httpPort) -}}
{{- end -}}

{{/*
The spec of the default Stack, as YAML: image, Redis and MongoDB refs (the release's
backends Secret or the external ones) and telemetry (the release's collector), with
stack.spec merged over it. Fails when a backend is missing.
*/}}
{{- define "stack.stackSpec" -}}
{{- $backends := include "stack.backendsSecretName" . }}
{{- $spec := dict "image" (dict
    "registry" .Values.stack.image.registry
    "tag" (default .Chart.AppVersion .Values.stack.image.tag)
    "pullPolicy" .Values.stack.image.pullPolicy) }}
{{- with .Values.imagePullSecrets }}
{{- $_ := set $spec.image "pullSecrets" . }}
{{- end }}
{{- /* Redis: the chart's (URL in the backends Secret) or the external one. */}}
{{- if .Values.redis.enabled }}
{{- $_ := set $spec "redis" (dict "urlSecretRef" (dict "name" $backends "key" "redis")) }}
{{- else if .Values.redis.external.urlSecretRef.name }}
{{- $_ := set $spec "redis" (dict "urlSecretRef" (deepCopy .Values.redis.external.urlSecretRef)) }}
{{- end }}
{{- /* MongoDB: the chart's (URI in the backends Secret) or the external one; through the
chart's Database when stack.database.enabled. */}}
{{- if .Values.stack.database.enabled }}
{{- $_ := set $spec "mongodb" (dict "databaseRef" (dict "name" (include "stack.stackName" .))) }}
{{- else if (include "stack.mongodbUriRef" .) }}
{{- $_ := set $spec "mongodb" (dict "uriSecretRef" (include "stack.mongodbUriRef" . | fromYaml)) }}
{{- end }}
{{- if .Values.otelCollector.enabled }}
{{- $_ := set $spec "telemetry" (dict "enabled" true "endpoint" (include "stack.collectorEndpoint" .) "protocol" "http/protobuf") }}
{{- end }}
{{- $spec = mergeOverwrite $spec (deepCopy .Values.stack.spec) }}
{{- if not (and $spec.redis $spec.redis.urlSecretRef $spec.redis.urlSecretRef.name $spec.redis.urlSecretRef.key) }}
{{- fail "stack: the default Stack needs Redis: keep redis.enabled, or set redis.external.urlSecretRef {name, key}" }}
{{- end }}
{{- if not (and $spec.mongodb (or $spec.mongodb.databaseRef (and $spec.mongodb.uriSecretRef $spec.mongodb.uriSecretRef.name $spec.mongodb.uriSecretRef.key))) }}
{{- fail "stack: the default Stack needs MongoDB: set mongodb.enabled, or mongodb.external.uriSecretRef {name, key}" }}
{{- end }}
{{- toYaml $spec }}
{{- end -}}

{{- /* The Secret key {name, key} of the MongoDB URI: the chart's or the external one; empty when neither. */}}
{{- define "stack.mongodbUriRef" -}}
{{- if .Values.mongodb.enabled }}
{{- toYaml (dict "name" (include "stack.backendsSecretName" .) "key" "mongodb") }}
{{- else if .Values.mongodb.external.uriSecretRef.name }}
{{- toYaml .Values.mongodb.external.uriSecretRef }}
{{- end }}
{{- end -}}

{{- /* The default Stack's Database spec (stack.database): its connection from the chart's
MongoDB or the external one, merged with stack.database.spec. */}}
{{- define "stack.databaseSpec" -}}
{{- $spec := dict "stackRef" (dict "name" (include "stack.stackName" .)) }}
{{- with (include "stack.mongodbUriRef" .) }}
{{- $_ := set $spec "connection" (dict "uriSecretRef" (. | fromYaml)) }}
{{- end }}
{{- $spec = mergeOverwrite $spec (deepCopy .Values.stack.database.spec) }}
{{- if not (and $spec.connection $spec.connection.uriSecretRef $spec.connection.uriSecretRef.name $spec.connection.uriSecretRef.key) }}
{{- fail "stack.database: the Database needs MongoDB: set mongodb.enabled, mongodb.external.uriSecretRef {name, key}, or stack.database.spec.connection.uriSecretRef" }}
{{- end }}
{{- toYaml $spec }}
{{- end -}}
