{{/*
The environment of a service's container (and of its migration Job, with migrateOnly).
Args: root, name, svc (the merged service block), migrateOnly.
Names follow shared/careloop_shared/settings.py and services/workspace/workspace/config.py.
*/}}
{{- define "careloop.env" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $P := upper .name -}}
- name: {{ $P }}_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "careloop.dbCluster" . }}-app
      key: uri
{{- if $v.postgresql.tls.enabled }}
- name: CARELOOP_PG_SSLMODE
  value: {{ $v.postgresql.tls.sslmode | quote }}
- name: CARELOOP_PG_SSLROOTCERT
  value: /etc/careloop/pg-ca/ca.crt
{{- end }}
- name: CARELOOP_LOG_LEVEL
  value: {{ .svc.logLevel | quote }}
{{- if .migrateOnly }}
- name: CARELOOP_STARTUP_WAIT_S
  value: {{ .svc.migrations.startupWaitSeconds | quote }}
{{- else }}
- name: {{ $P }}_HOST
  value: "0.0.0.0"
- name: {{ $P }}_PORT
  value: {{ .svc.containerPort | quote }}
- name: CARELOOP_JWT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ required "auth.jwt.existingSecret: the name of a Secret holding the JWT secret" $v.auth.jwt.existingSecret }}
      key: {{ $v.auth.jwt.key }}
- name: CARELOOP_JWT_ISSUER
  value: {{ $v.auth.jwt.issuer | quote }}
{{- with $v.auth.oidc }}
{{- if .issuer }}
- name: CARELOOP_OIDC_ISSUER
  value: {{ .issuer | quote }}
- name: CARELOOP_OIDC_AUDIENCE
  value: {{ required "auth.oidc.audience is required with auth.oidc.issuer" .audience | quote }}
{{- if .jwksUrl }}
- name: CARELOOP_OIDC_JWKS_URL
  value: {{ .jwksUrl | quote }}
{{- end }}
- name: CARELOOP_OIDC_ALGORITHMS
  value: {{ .algorithms | quote }}
- name: CARELOOP_OIDC_AGENCY_CLAIM
  value: {{ .agencyClaim | quote }}
- name: CARELOOP_OIDC_ROLE_CLAIM
  value: {{ .roleClaim | quote }}
{{- end }}
{{- end }}
{{- if has .name (splitList " " (include "careloop.keyClients" $root)) }}
# Where it asks for a patient's data key to seal and open the free text it keeps.
- name: CARELOOP_INTAKE_URL
  value: {{ printf "http://%s-intake:%d" (include "careloop.fullname" $root) (int $v.common.containerPort) | quote }}
{{- end }}
{{- if eq .name "intake" }}
- name: CARELOOP_KEKS
  valueFrom:
    secretKeyRef:
      name: {{ required "encryption.keks.existingSecret: the name of a Secret holding CARELOOP_KEKS" $v.encryption.keks.existingSecret }}
      key: {{ $v.encryption.keks.key }}
- name: INTAKE_BLIND_INDEX_KEY
  valueFrom:
    secretKeyRef:
      name: {{ required "encryption.blindIndex.existingSecret: the name of a Secret holding INTAKE_BLIND_INDEX_KEY" $v.encryption.blindIndex.existingSecret }}
      key: {{ $v.encryption.blindIndex.key }}
{{- end }}
{{- if eq .name "record" }}
{{- with $v.record }}
- name: RECORD_CHAIN_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ required "record.keys.existingSecret: the name of a Secret holding the record's keys" .keys.existingSecret }}
      key: {{ .keys.chainKeysKey }}
- name: RECORD_CHECKPOINT_SIGNING_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .keys.existingSecret }}
      key: {{ .keys.signingKeyKey }}
{{- if .keys.checkpointPublicKeys }}
- name: RECORD_CHECKPOINT_PUBLIC_KEYS
  value: {{ .keys.checkpointPublicKeys | quote }}
{{- end }}
- name: RECORD_CHECKPOINT_EVERY_S
  value: {{ .checkpointEverySeconds | quote }}
{{- end }}
{{- end }}
{{- if eq .name "workspace" }}
{{- include "careloop.workspaceEnv" . }}
{{- else }}
{{- include "careloop.kafkaEnv" . | nindent 0 }}
{{- end }}
{{- if $v.observability.otlp.endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ $v.observability.otlp.endpoint | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: {{ $v.observability.otlp.protocol | quote }}
- name: OTEL_SERVICE_NAME
  value: {{ printf "careloop-%s" .name | quote }}
- name: OTEL_TRACES_SAMPLER
  value: parentbased_traceidratio
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ $v.observability.otlp.sampleRatio | quote }}
- name: K8S_POD_NAME
  valueFrom:
    fieldRef: {fieldPath: metadata.name}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ printf "service.namespace=careloop,service.version=%s,k8s.namespace.name=%s,k8s.pod.name=$(K8S_POD_NAME)" ($v.image.tag | default $root.Chart.AppVersion) $root.Release.Namespace | quote }}
{{- end }}
{{- with .svc.extraEnvVars }}
{{ toYaml . }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "careloop.kafkaEnv" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $k := $v.kafka -}}
- name: KAFKA_BOOTSTRAP_SERVERS
  value: {{ include "careloop.kafkaBootstrap" $root | quote }}
- name: CARELOOP_TOPIC_PREFIX
  value: {{ $k.topicPrefix | quote }}
- name: CARELOOP_TOPIC_PARTITIONS
  value: {{ include "careloop.partitions" $root | quote }}
- name: CARELOOP_TOPIC_REPLICATION_FACTOR
  value: {{ $k.topics.replicationFactor | quote }}
- name: CARELOOP_TOPIC_MIN_INSYNC_REPLICAS
  value: {{ $k.topics.minInsyncReplicas | quote }}
# Where the consumer keeps its group member id: /tmp is the pod's emptyDir, which outlives a container killed
# outright, so the container started after it makes the killed member leave the group at once instead of
# its partitions waiting out the session timeout (a dynamic member: deploy/README.md, Choices).
- name: {{ upper .name }}_GROUP_MEMBER_FILE
  value: /tmp/careloop-group-member
{{- if include "careloop.strimzi" $root }}
# The Strimzi KafkaTopic resources own the topics; a service waits for them and names any missing.
- name: CARELOOP_KAFKA_CREATE_TOPICS
  value: "false"
- name: CARELOOP_KAFKA_SSL_CA_FILE
  value: /etc/careloop/kafka-ca/ca.crt
{{- if eq $k.strimzi.authentication "tls" }}
- name: CARELOOP_KAFKA_SECURITY_PROTOCOL
  value: SSL
- name: CARELOOP_KAFKA_SSL_CERT_FILE
  value: /etc/careloop/kafka-user/user.crt
- name: CARELOOP_KAFKA_SSL_KEY_FILE
  value: /etc/careloop/kafka-user/user.key
{{- else }}
- name: CARELOOP_KAFKA_SECURITY_PROTOCOL
  value: SASL_SSL
- name: CARELOOP_KAFKA_SASL_MECHANISM
  value: SCRAM-SHA-512
- name: CARELOOP_KAFKA_SASL_USERNAME
  value: {{ include "careloop.kafkaUser" . | quote }}
- name: CARELOOP_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "careloop.kafkaUser" . }}
      key: password
{{- end }}
{{- else }}
{{- $e := $k.external }}
- name: CARELOOP_KAFKA_CREATE_TOPICS
  value: {{ $e.createTopics | quote }}
- name: CARELOOP_KAFKA_SECURITY_PROTOCOL
  value: {{ $e.securityProtocol | quote }}
{{- if hasPrefix "SASL_" $e.securityProtocol }}
- name: CARELOOP_KAFKA_SASL_MECHANISM
  value: {{ $e.saslMechanism | quote }}
- name: CARELOOP_KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ printf $e.credentialsSecretTemplate .name }}
      key: {{ $e.usernameKey }}
- name: CARELOOP_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ printf $e.credentialsSecretTemplate .name }}
      key: {{ $e.passwordKey }}
{{- end }}
{{- if $e.caSecret.name }}
- name: CARELOOP_KAFKA_SSL_CA_FILE
  value: /etc/careloop/kafka-ca/ca.crt
{{- end }}
{{- end }}
{{- end -}}

{{- define "careloop.workspaceEnv" -}}
{{- $root := .root -}}
{{- $w := $root.Values.workspace -}}
{{- range $name := splitList " " (include "careloop.serviceNames" $root) }}
{{- if and (ne $name "workspace") (include "careloop.enabled" (dict "root" $root "name" $name)) }}
- name: WORKSPACE_{{ upper $name }}_URL
  value: {{ printf "http://%s-%s:%d" (include "careloop.fullname" $root) $name (int $root.Values.common.containerPort) | quote }}
{{- end }}
{{- end }}
- name: WORKSPACE_DEV_SIGNIN
  value: {{ $w.devSignin | quote }}
- name: WORKSPACE_COOKIE_SECURE
  value: {{ $w.cookieSecure | quote }}
- name: WORKSPACE_TIME_ZONE
  value: {{ $w.timeZone | quote }}
{{- if $w.publicUrl }}
- name: WORKSPACE_PUBLIC_URL
  value: {{ $w.publicUrl | quote }}
{{- end }}
{{- if $w.oidc.clientId }}
- name: WORKSPACE_OIDC_CLIENT_ID
  value: {{ $w.oidc.clientId | quote }}
- name: WORKSPACE_OIDC_SCOPES
  value: {{ $w.oidc.scopes | quote }}
{{- if $w.oidc.clientSecret.existingSecret }}
- name: WORKSPACE_OIDC_CLIENT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ $w.oidc.clientSecret.existingSecret }}
      key: {{ $w.oidc.clientSecret.key }}
{{- end }}
{{- end }}
{{- end -}}
