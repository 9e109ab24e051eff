{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "cryptomus-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full resource name: <release>-<name>, or the release name when it already contains the name. */}}
{{- define "cryptomus-exporter.fullname" -}}
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

{{- define "cryptomus-exporter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "cryptomus-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cryptomus-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "cryptomus-exporter.labels" -}}
helm.sh/chart: {{ include "cryptomus-exporter.chart" . }}
{{ include "cryptomus-exporter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cryptomus-exporter
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "cryptomus-exporter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cryptomus-exporter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* <registry>/<repository>@<digest>, or :<tag> (default the appVersion) without a digest.
global.imageRegistry (set by an umbrella chart) replaces image.registry, as in the
prometheus-community charts. */}}
{{- define "cryptomus-exporter.image" -}}
{{- $image := .Values.image }}
{{- $registry := default $image.registry (.Values.global).imageRegistry }}
{{- $repository := $registry | empty | ternary $image.repository (printf "%s/%s" $registry $image.repository) }}
{{- if $image.digest }}
{{- printf "%s@%s" $repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $repository (default .Chart.AppVersion $image.tag) }}
{{- end }}
{{- end }}

{{/* global.imagePullSecrets and imagePullSecrets as LocalObjectReferences; plain names are
accepted too. */}}
{{- define "cryptomus-exporter.imagePullSecrets" -}}
{{- range concat ((.Values.global).imagePullSecrets | default list) .Values.imagePullSecrets }}
{{- if kindIs "string" . }}
- name: {{ . }}
{{- else }}
- name: {{ .name }}
{{- end }}
{{- end }}
{{- end }}

{{/* Names of the alerts in the chart's rules file. */}}
{{- define "cryptomus-exporter.alertNames" -}}
{{- range (.Files.Get "files/cryptomus-exporter.rules.yml" | fromYaml).groups }}
{{- range .rules }}
{{- if .alert }}{{ .alert }} {{ end }}
{{- end }}
{{- end }}
{{- end }}

{{/* Namespace of an optional monitoring object: its own override, else the release namespace. */}}
{{- define "cryptomus-exporter.namespace" -}}
{{- default .root.Release.Namespace .override }}
{{- end }}

{{/* Credentials: the chart renders its Secret only for live mode without existingSecret. */}}
{{- define "cryptomus-exporter.rendersCredentialsSecret" -}}
{{- if and (not .Values.demo) (not .Values.credentials.existingSecret) }}true{{ end }}
{{- end }}

{{- define "cryptomus-exporter.credentialsSecretName" -}}
{{- default (printf "%s-credentials" (include "cryptomus-exporter.fullname" .)) .Values.credentials.existingSecret }}
{{- end }}

{{/* Stops rendering with one clear line when the exporter could not start. */}}
{{- define "cryptomus-exporter.validate" -}}
{{- $c := .Values.credentials }}
{{- if not .Values.demo }}
{{- if not $c.existingSecret }}
{{- if and (not $c.userId) (not $c.apiKey) }}
{{- fail "cryptomus-exporter: no credentials. Set credentials.existingSecret (a Secret with the keys credentials.userIdKey and credentials.apiKeyKey), or credentials.userId and credentials.apiKey, or demo=true to run against the built-in simulator." }}
{{- end }}
{{- if not $c.userId }}
{{- fail "cryptomus-exporter: credentials.apiKey is set but credentials.userId is empty; set both, or use credentials.existingSecret." }}
{{- end }}
{{- if not $c.apiKey }}
{{- fail "cryptomus-exporter: credentials.userId is set but credentials.apiKey is empty; set both, or use credentials.existingSecret." }}
{{- end }}
{{- end }}
{{- end }}
{{- range .Values.extraEnv }}
{{- if and (hasPrefix "CRYPTOMUS_" .name) (hasKey . "value") }}
{{- if or (eq .name "CRYPTOMUS_API_KEY") (eq .name "CRYPTOMUS_USER_ID") (eq .name "CRYPTOMUS_API_KEY_FILE") (eq .name "CRYPTOMUS_DEMO") (eq .name "CRYPTOMUS_LISTEN_ADDRESS") (eq .name "CRYPTOMUS_WEB_CONFIG_FILE") }}
{{- fail (printf "cryptomus-exporter: extraEnv must not set %s; use the credentials.*, demo, containerPort or webConfig values (the API key must never be a plain environment value)." .name) }}
{{- end }}
{{- end }}
{{- end }}
{{- range .Values.extraVolumes }}
{{- if has .name (list "tmp" "credentials" "web-config" "tls") }}
{{- fail (printf "cryptomus-exporter: extraVolumes must not use the name %q: tmp, credentials, web-config and tls are the chart's own volumes." .name) }}
{{- end }}
{{- end }}
{{- $alerts := include "cryptomus-exporter.alertNames" . | splitList " " }}
{{- range $name, $_ := .Values.prometheusRule.disabled }}
{{- if not (has $name $alerts) }}
{{- fail (printf "cryptomus-exporter: prometheusRule.disabled names %s, which is not one of the chart's alerts (%s)." $name (compact $alerts | join ", ")) }}
{{- end }}
{{- end }}
{{- $web := .Values.webConfig }}
{{- if and $web.tls.enabled (not $web.existingSecret) (not $web.tls.secretName) }}
{{- fail "cryptomus-exporter: webConfig.tls.enabled needs webConfig.tls.secretName (a kubernetes.io/tls Secret), or webConfig.existingSecret with your own web config file." }}
{{- end }}
{{- if and .Values.serviceMonitor.enabled $web.basicAuthUsers (not .Values.serviceMonitor.basicAuth.secretName) }}
{{- fail "cryptomus-exporter: webConfig.basicAuthUsers protects /metrics, so the ServiceMonitor needs serviceMonitor.basicAuth.secretName (a Secret with the plain username and password)." }}
{{- end }}
{{- end }}

{{/* Web config: rendered by the chart from basicAuthUsers/tls, or taken from existingSecret. */}}
{{- define "cryptomus-exporter.webConfigEnabled" -}}
{{- $web := .Values.webConfig }}
{{- if or $web.existingSecret $web.basicAuthUsers $web.tls.enabled }}true{{ end }}
{{- end }}

{{- define "cryptomus-exporter.rendersWebConfigSecret" -}}
{{- if and (include "cryptomus-exporter.webConfigEnabled" .) (not .Values.webConfig.existingSecret) }}true{{ end }}
{{- end }}

{{- define "cryptomus-exporter.webConfigSecretName" -}}
{{- default (printf "%s-web-config" (include "cryptomus-exporter.fullname" .)) .Values.webConfig.existingSecret }}
{{- end }}

{{- define "cryptomus-exporter.webConfigFile" -}}
{{- $web := .Values.webConfig }}
{{- $file := dict }}
{{- if $web.basicAuthUsers }}
{{- $_ := set $file "basic_auth_users" $web.basicAuthUsers }}
{{- end }}
{{- if $web.tls.enabled }}
{{- $_ := set $file "tls_server_config" (dict "cert_file" "/etc/cryptomus-exporter/tls/tls.crt" "key_file" "/etc/cryptomus-exporter/tls/tls.key" "min_version" $web.tls.minVersion) }}
{{- end }}
{{- toYaml $file }}
{{- end }}

{{- define "cryptomus-exporter.scheme" -}}
{{- if .Values.webConfig.tls.enabled }}https{{ else }}http{{ end }}
{{- end }}

{{/* A config value as an environment value: lists joined by commas, numbers without exponent. */}}
{{- define "cryptomus-exporter.envValue" -}}
{{- if kindIs "slice" . }}
{{- $items := list }}
{{- range . }}
{{- $items = append $items (kindIs "string" . | ternary . (toJson .)) }}
{{- end }}
{{- join "," $items }}
{{- else if kindIs "string" . }}
{{- . }}
{{- else }}
{{- toJson . }}
{{- end }}
{{- end }}
