{{/* Chart name, overridable. */}}
{{- define "violin.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{/* Resource name prefix: <release>-<chart>, or just <release> when it already contains the chart name. */}}
{{- define "violin.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains (include "violin.name" .) .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "violin.name" .) | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "violin.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "violin.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: violin
{{- end -}}

{{/* Selector labels of one component (operator, agent): stable across upgrades. */}}
{{- define "violin.selectorLabels" -}}
app.kubernetes.io/name: {{ include "violin.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "violin.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "violin.operatorServiceAccount" -}}
{{- default (printf "%s-operator" (include "violin.fullname" .)) .Values.serviceAccount.operator.name -}}
{{- end -}}

{{/* The Secret with the agents' TLS certificate and its CA: the user's, or the one the chart makes. */}}
{{- define "violin.agentTlsSecret" -}}
{{- default (printf "%s-agent-tls" (include "violin.fullname" .)) .Values.agent.tls.secretName -}}
{{- end -}}

{{- define "violin.agentServiceAccount" -}}
{{- default (printf "%s-agent" (include "violin.fullname" .)) .Values.serviceAccount.agent.name -}}
{{- end -}}

{{/* Container security of the restricted Pod Security Standard (every container but the agent's). */}}
{{- define "violin.restrictedContainerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}
