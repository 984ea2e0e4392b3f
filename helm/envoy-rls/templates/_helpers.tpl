{{/* The chart's name, truncated to a DNS label. */}}
{{- define "envoy-rls.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name, used for every object. */}}
{{- define "envoy-rls.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "envoy-rls.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "envoy-rls.labels" -}}
helm.sh/chart: {{ include "envoy-rls.chart" . }}
{{ include "envoy-rls.selectorLabels" . }}
app.kubernetes.io/version: {{ (default .Chart.AppVersion .Values.image.tag) | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the pods. */}}
{{- define "envoy-rls.selectorLabels" -}}
app.kubernetes.io/name: {{ include "envoy-rls.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "envoy-rls.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "envoy-rls.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "envoy-rls.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The ConfigMap holding the rules. */}}
{{- define "envoy-rls.rulesConfigMap" -}}
{{- default (printf "%s-rules" (include "envoy-rls.fullname" .)) .Values.existingConfigMap }}
{{- end }}

{{/* The rule files as they go into the ConfigMap (text kept, objects rendered). */}}
{{- define "envoy-rls.rulesData" -}}
{{- $rules := .Values.rules }}
{{- if not $rules }}
{{- $rules = dict "ratelimit.yaml" (.Files.Get "files/ratelimit.yaml") }}
{{- end }}
{{- range $file, $rules := $rules }}
{{ $file }}: |
{{- if kindIs "string" $rules }}
{{ $rules | trimSuffix "\n" | indent 2 }}
{{- else }}
{{ toYaml $rules | trimSuffix "\n" | indent 2 }}
{{- end }}
{{- end }}
{{- end }}

{{/* Whether the chart creates its own Secret. */}}
{{- define "envoy-rls.createSecret" -}}
{{- $r := .Values.store.redis }}
{{- if or (and $r.password (not $r.existingSecret)) (and $r.tls.enabled (not $r.tls.existingSecret) (or $r.tls.ca $r.tls.cert $r.tls.key)) }}true{{- end }}
{{- end }}

{{/* The Secret holding the Redis password. */}}
{{- define "envoy-rls.redisPasswordSecret" -}}
{{- default (include "envoy-rls.fullname" .) .Values.store.redis.existingSecret }}
{{- end }}

{{- define "envoy-rls.redisTLSDir" -}}/var/run/secrets/envoy-rls/redis-tls{{- end }}
{{- define "envoy-rls.grpcTLSDir" -}}/var/run/secrets/envoy-rls/grpc-tls{{- end }}

{{/* The container's arguments, built from values, one per line. */}}
{{- define "envoy-rls.args" -}}
{{- $v := .Values }}
{{- $s := $v.server }}
{{- $rl := $v.rateLimit }}
{{- $st := $v.store }}
serve
--config=/etc/envoy-rls
--grpc-addr=:{{ int64 $s.grpcPort }}
--http-addr=:{{ int64 $s.httpPort }}
{{- with $s.debugAddr }}
--debug-addr={{ . }}
{{- end }}
--log-level={{ $s.logLevel }}
--log-format={{ $s.logFormat }}
{{- with $s.shutdownTimeout }}
--shutdown-timeout={{ . }}
{{- end }}
{{- with $s.maxDescriptors }}
--max-descriptors={{ int64 . }}
{{- end }}
{{- with $s.maxEntries }}
--max-entries={{ int64 . }}
{{- end }}
{{- with $s.maxValueBytes }}
--max-value-bytes={{ int64 . }}
{{- end }}
{{- with $s.grpc.maxConnectionAge }}
--grpc-max-connection-age={{ . }}
{{- end }}
{{- with $s.grpc.keepaliveTime }}
--grpc-keepalive-time={{ . }}
{{- end }}
{{- if $s.grpc.tls.enabled }}
--grpc-tls-cert={{ include "envoy-rls.grpcTLSDir" . }}/tls.crt
--grpc-tls-key={{ include "envoy-rls.grpcTLSDir" . }}/tls.key
{{- if $s.grpc.tls.clientAuth }}
--grpc-tls-client-ca={{ include "envoy-rls.grpcTLSDir" . }}/ca.crt
{{- end }}
{{- end }}
--store={{ $st.type }}
{{- with $st.timeout }}
--store-timeout={{ . }}
{{- end }}
{{- if eq $st.type "memory" }}
{{- with $st.memory.maxKeys }}
--memory-max-keys={{ int64 . }}
{{- end }}
{{- end }}
{{- if eq $st.type "redis" }}
{{- $r := $st.redis }}
--redis-mode={{ $r.mode }}
{{- with $r.url }}
--redis-url={{ . }}
{{- end }}
{{- with $r.addrs }}
--redis-addrs={{ join "," . }}
{{- end }}
{{- with $r.master }}
--redis-master={{ . }}
{{- end }}
{{- with $r.username }}
--redis-username={{ . }}
{{- end }}
{{- with $r.db }}
--redis-db={{ int64 . }}
{{- end }}
{{- with $r.poolSize }}
--redis-pool-size={{ int64 . }}
{{- end }}
{{- if $r.tls.enabled }}
{{- with $r.tls.serverName }}
--redis-tls-server-name={{ . }}
{{- end }}
{{- if $r.tls.existingSecret }}
{{- if $r.tls.caKey }}
--redis-tls-ca={{ include "envoy-rls.redisTLSDir" . }}/{{ $r.tls.caKey }}
{{- end }}
{{- if and $r.tls.certKey $r.tls.keyKey }}
--redis-tls-cert={{ include "envoy-rls.redisTLSDir" . }}/{{ $r.tls.certKey }}
--redis-tls-key={{ include "envoy-rls.redisTLSDir" . }}/{{ $r.tls.keyKey }}
{{- end }}
{{- else }}
{{- if $r.tls.ca }}
--redis-tls-ca={{ include "envoy-rls.redisTLSDir" . }}/ca.crt
{{- end }}
{{- if and $r.tls.cert $r.tls.key }}
--redis-tls-cert={{ include "envoy-rls.redisTLSDir" . }}/tls.crt
--redis-tls-key={{ include "envoy-rls.redisTLSDir" . }}/tls.key
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- if eq $st.type "memcached" }}
--memcached-servers={{ join "," $st.memcached.servers }}
{{- end }}
{{- with $rl.keyPrefix }}
--key-prefix={{ . }}
{{- end }}
--failure-mode={{ $rl.failureMode }}
{{- if $rl.shadowMode }}
--shadow-mode=true
{{- end }}
{{- if not (kindIs "invalid" $rl.nearLimitRatio) }}
--near-limit-ratio={{ $rl.nearLimitRatio }}
{{- end }}
{{- if $rl.responseHeaders }}
--response-headers=true
{{- end }}
{{- with $rl.overLimitBody }}
--over-limit-body={{ . }}
{{- end }}
{{- with $rl.localCacheSize }}
--local-cache-size={{ int64 . }}
{{- end }}
{{- range $v.extraArgs }}
{{ . }}
{{- end }}
{{- end }}

{{/* Checks values that the schema cannot. */}}
{{- define "envoy-rls.validate" -}}
{{- $st := .Values.store }}
{{- if and (eq $st.type "redis") (not $st.redis.url) (not $st.redis.addrs) }}
{{- fail "store.type=redis needs store.redis.url or store.redis.addrs" }}
{{- end }}
{{- if and (eq $st.type "redis") (ne $st.redis.mode "single") (not $st.redis.addrs) }}
{{- fail (printf "store.redis.mode=%s needs store.redis.addrs" $st.redis.mode) }}
{{- end }}
{{- if and (eq $st.type "redis") (eq $st.redis.mode "sentinel") (not $st.redis.master) }}
{{- fail "store.redis.mode=sentinel needs store.redis.master" }}
{{- end }}
{{- if and (eq $st.type "memcached") (not $st.memcached.servers) }}
{{- fail "store.type=memcached needs store.memcached.servers" }}
{{- end }}
{{- if and $st.redis.tls.enabled (not $st.redis.tls.existingSecret) (not (or $st.redis.tls.ca $st.redis.tls.cert)) (not $st.redis.tls.serverName) }}
{{- fail "store.redis.tls.enabled needs store.redis.tls.existingSecret, ca/cert/key, or serverName" }}
{{- end }}
{{- if and .Values.server.grpc.tls.enabled (not .Values.server.grpc.tls.existingSecret) }}
{{- fail "server.grpc.tls.enabled needs server.grpc.tls.existingSecret (tls.crt, tls.key and, for clientAuth, ca.crt)" }}
{{- end }}
{{- if and .Values.podDisruptionBudget.enabled (not (kindIs "invalid" .Values.podDisruptionBudget.minAvailable)) (not (kindIs "invalid" .Values.podDisruptionBudget.maxUnavailable)) }}
{{- fail "podDisruptionBudget: set minAvailable or maxUnavailable, not both" }}
{{- end }}
{{- end }}
