{{/* Names ---------------------------------------------------------------------------------- */}}

{{- define "harbor-secrets.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's objects: "harbor-secrets" for a release of that name, else release-name. */}}
{{- define "harbor-secrets.fullname" -}}
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

{{- define "harbor-secrets.component" -}}
{{- if eq .Values.mode "watch" }}watch{{ else }}sync{{ end }}
{{- end }}

{{/* Labels: the recommended app.kubernetes.io set on every object. */}}
{{- define "harbor-secrets.selectorLabels" -}}
app.kubernetes.io/name: {{ include "harbor-secrets.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: {{ include "harbor-secrets.component" . }}
{{- end }}

{{- define "harbor-secrets.labels" -}}
{{ include "harbor-secrets.selectorLabels" . }}
app.kubernetes.io/part-of: harbor-secrets
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "harbor-secrets.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* checkov suppressions, each with its reason (tests/test_deploy_checkov.py pins the set). */}}
{{- define "harbor-secrets.checkovSkips" -}}
checkov.io/skip1: CKV_K8S_43=The image is pinned by a version tag here (make tags immutable in your registry); set image.digest at release time because the digest only exists once the image is pushed.
checkov.io/skip2: CKV_K8S_15=IfNotPresent on purpose. Always would make every run or restart depend on the registry being reachable, so a registry outage would let tokens expire; the reference is a version tag or a digest, never latest.
{{- end }}

{{/* The pod spec the CronJob and the watch Deployment share; each adds its own settings. */}}
{{- define "harbor-secrets.podSpec" -}}
serviceAccountName: {{ include "harbor-secrets.fullname" . }}
automountServiceAccountToken: false
enableServiceLinks: false
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  fsGroup: 10001
  seccompProfile:
    type: RuntimeDefault
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  - name: config
    configMap:
      name: {{ include "harbor-secrets.fullname" . }}-config
  # Files, not environment variables: a value in the environment leaks into
  # /proc/<pid>/environ, crash reports and child processes.
  - name: credentials
    secret:
      secretName: {{ .Values.credentialsSecret }}
      defaultMode: 0440
  - name: tmp
    emptyDir:
      medium: Memory
      sizeLimit: 16Mi
  {{- if .Values.vaultKubernetesAuth.enabled }}
  - name: vault-token
    projected:
      defaultMode: 0440
      sources:
        - serviceAccountToken:
            audience: {{ .Values.vaultKubernetesAuth.audience }}
            expirationSeconds: {{ .Values.vaultKubernetesAuth.expirationSeconds }}
            path: token
  {{- end }}
  {{- if .Values.kubernetesApi.enabled }}
  - name: kube-api-access
    projected:
      defaultMode: 0440
      sources:
        - serviceAccountToken:
            expirationSeconds: {{ .Values.kubernetesApi.expirationSeconds }}
            path: token
        - configMap:
            name: kube-root-ca.crt
            items:
              - key: ca.crt
                path: ca.crt
        - downwardAPI:
            items:
              - path: namespace
                fieldRef:
                  fieldPath: metadata.namespace
  {{- end }}
{{- end }}

{{/* The container but for its name (the caller's list item) and the mode's own settings. */}}
{{- define "harbor-secrets.container" -}}
image: {{ include "harbor-secrets.image" . }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
env:
  - name: HARBOR_SECRETS_LOG_FORMAT
    value: json
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  allowPrivilegeEscalation: false
  privileged: false
  readOnlyRootFilesystem: true
  capabilities:
    drop:
      - ALL
  seccompProfile:
    type: RuntimeDefault
resources:
  {{- toYaml .Values.resources | nindent 2 }}
volumeMounts:
  - name: config
    mountPath: /etc/harbor-secrets
    readOnly: true
  - name: credentials
    mountPath: /var/run/secrets/harbor
    readOnly: true
  - name: tmp
    mountPath: /tmp
  {{- if .Values.vaultKubernetesAuth.enabled }}
  - name: vault-token
    mountPath: /var/run/secrets/vault
    readOnly: true
  {{- end }}
  {{- if .Values.kubernetesApi.enabled }}
  - name: kube-api-access
    mountPath: /var/run/secrets/kubernetes.io/serviceaccount
    readOnly: true
  {{- end }}
{{- end }}

{{/* The configuration --------------------------------------------------------------------

     `config` is harbor-secrets.toml as text, parsed here (fromToml, helm/helm#12026; tested with Helm 4.1.4) so that a
     broken file, or a secret pasted where a reference belongs, fails `helm install` instead of
     reaching the cluster. The reference rule is the tool's own (REFERENCE_PATTERN in
     harbor_secrets/references.py: a scheme of lower-case words joined by hyphens, a colon,
     the rest on one line); the fields are every
     credential the tool and its providers read (the core's client_secret, the vault
     provider's auth token, role_id, secret_id, jwt). The full check is the tool's own
     `config check`, which the chart's tests run on every rendered configuration. The error
     never repeats the value. */}}

{{- define "harbor-secrets.config" -}}
{{- $config := fromToml .Values.config }}
{{- if hasKey $config "Error" }}
{{- fail (printf "config is not valid TOML: %s" $config.Error) }}
{{- end }}
{{- range $table := list "credentials" "sinks" "targets" }}
{{- if not (hasKey $config $table) }}
{{- fail (printf "config has no %s: write the whole harbor-secrets.toml (see the chart's values.yaml)" $table) }}
{{- end }}
{{- end }}
{{- range $name, $credentials := $config.credentials }}
{{- include "harbor-secrets.reference" (list (printf "credentials.%s.client_secret" $name) $credentials.client_secret) }}
{{- end }}
{{- range $name, $sink := $config.sinks }}
{{- $auth := default dict $sink.auth }}
{{- range $key := list "token" "role_id" "secret_id" "jwt" }}
{{- if hasKey $auth $key }}
{{- include "harbor-secrets.reference" (list (printf "sinks.%s.auth.%s" $name $key) (get $auth $key)) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and (contains "/var/run/secrets/vault/" .Values.config) (not .Values.vaultKubernetesAuth.enabled) }}
{{- fail "config reads /var/run/secrets/vault/, which only vaultKubernetesAuth.enabled=true mounts" }}
{{- end }}
{{- if and (contains "/var/run/secrets/kubernetes.io/serviceaccount" .Values.config) (not .Values.kubernetesApi.enabled) }}
{{- fail "config reads /var/run/secrets/kubernetes.io/serviceaccount, which only kubernetesApi.enabled=true mounts" }}
{{- end }}
{{- .Values.config }}
{{- end }}

{{- define "harbor-secrets.reference" -}}
{{- $key := index . 0 }}
{{- $value := index . 1 }}
{{- if not (and (kindIs "string" $value) (regexMatch "^[a-z]+(-[a-z]+)*:[^\n]+$" $value)) }}
{{- fail (printf "config: %s must be a secret reference such as \"file:/var/run/secrets/harbor/<key>\" (a key of the credentials Secret), never the value itself (not shown); if a real secret was pasted, rotate it" $key) }}
{{- end }}
{{- end }}
