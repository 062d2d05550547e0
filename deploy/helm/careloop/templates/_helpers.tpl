{{/* The services, in the order they are rendered; the workspace calls the five others over HTTP. */}}
{{- define "careloop.serviceNames" -}}
intake careplan referral followup record workspace
{{- end -}}

{{/* The services that seal free text with patients' data keys and ask intake for them
(intake/rules/key-release.v1.json names the same). */}}
{{- define "careloop.keyClients" -}}
careplan referral followup
{{- end -}}

{{- define "careloop.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "careloop.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "careloop.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "careloop.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: careloop
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Pods of the release, whatever their component. */}}
{{- define "careloop.releaseSelector" -}}
app.kubernetes.io/name: {{ include "careloop.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* A service's pods (Deployment and Service selector). Args: root, name. */}}
{{- define "careloop.selectorLabels" -}}
{{ include "careloop.releaseSelector" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{/* Annotations on every resource; `keep` adds Helm's keep policy (data that outlives the release). */}}
{{- define "careloop.annotations" -}}
{{- $a := deepCopy (.root.Values.commonAnnotations | default dict) -}}
{{- if and .keep .root.Values.global.keepDataOnUninstall -}}
{{- $_ := set $a "helm.sh/resource-policy" "keep" -}}
{{- end -}}
{{- with $a }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end -}}
{{- end -}}

{{/* A service's settings: its block under `services` merged over `common`. Args: root, name. */}}
{{- define "careloop.service" -}}
{{- $own := index .root.Values.services .name | default dict -}}
{{- toYaml (mergeOverwrite (deepCopy .root.Values.common) (deepCopy $own)) -}}
{{- end -}}

{{- define "careloop.enabled" -}}
{{- $own := index .root.Values.services .name | default dict -}}
{{- if ne (toString (index $own "enabled")) "false" }}true{{ end -}}
{{- end -}}

{{- define "careloop.image" -}}
{{- $registry := .Values.global.imageRegistry | default .Values.image.registry -}}
{{- $ref := printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) -}}
{{- if .Values.image.digest -}}
{{- $ref = printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- end -}}
{{- if $registry -}}{{ printf "%s/%s" $registry $ref }}{{- else -}}{{ $ref }}{{- end -}}
{{- end -}}

{{/* Kafka */}}
{{- define "careloop.strimzi" -}}
{{- if and .Values.kafka.strimzi.enabled (not .Values.kafka.external.bootstrap) }}true{{ end -}}
{{- end -}}

{{- define "careloop.kafkaCluster" -}}
{{- .Values.kafka.strimzi.clusterName | default (include "careloop.fullname" .) -}}
{{- end -}}

{{- define "careloop.kafkaBootstrap" -}}
{{- if include "careloop.strimzi" . -}}
{{- printf "%s-kafka-bootstrap:%d" (include "careloop.kafkaCluster" .) (int .Values.kafka.strimzi.listener.port) -}}
{{- else -}}
{{- required "kafka.external.bootstrap is required when kafka.strimzi.enabled is false" .Values.kafka.external.bootstrap -}}
{{- end -}}
{{- end -}}

{{/* The KafkaUser of a service, and the Secret Strimzi writes for it. Args: root, name. */}}
{{- define "careloop.kafkaUser" -}}
{{- printf "%s-%s" (include "careloop.fullname" .root) .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "careloop.topicTable" -}}
{{- .Files.Get "files/topics.json" -}}
{{- end -}}

{{- define "careloop.partitions" -}}
{{- $table := include "careloop.topicTable" . | fromJson -}}
{{- if kindIs "invalid" .Values.kafka.topics.partitions -}}{{ int $table.partitions }}{{- else -}}{{ int .Values.kafka.topics.partitions }}{{- end -}}
{{- end -}}

{{/* PostgreSQL: a service's CloudNativePG cluster and its application Secret. Args: root, name. */}}
{{- define "careloop.dbCluster" -}}
{{- printf "%s-%s-db" (include "careloop.fullname" .root) .name | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{/* The CA of a service's database cluster (CloudNativePG's <cluster>-ca), when TLS to it is on. */}}
{{- define "careloop.pgCaVolume" -}}
{{- if .root.Values.postgresql.tls.enabled }}
- name: pg-ca
  secret:
    secretName: {{ include "careloop.dbCluster" . }}-ca
    items: [{key: ca.crt, path: ca.crt}]
    defaultMode: 0440
{{- end }}
{{- end -}}

{{/* An egress rule from {to, ports}: without peers, those ports to any address (narrow it with `to`). */}}
{{- define "careloop.egressRule" -}}
{{- if or .to .ports }}
{{- $rule := dict }}
{{- with .to }}{{ $_ := set $rule "to" . }}{{ end }}
{{- with .ports }}{{ $_ := set $rule "ports" . }}{{ end }}
{{ list $rule | toYaml }}
{{- end }}
{{- end -}}

{{/* "true" when some enabled service scales with KEDA (its operator then reads lag from the brokers). */}}
{{- define "careloop.anyKeda" -}}
{{- $root := . -}}
{{- range $name := splitList " " (include "careloop.serviceNames" .) }}
{{- if include "careloop.enabled" (dict "root" $root "name" $name) }}
{{- $svc := include "careloop.service" (dict "root" $root "name" $name) | fromYaml }}
{{- if $svc.autoscaling.keda.enabled }}true{{ end }}
{{- end }}
{{- end }}
{{- end -}}
