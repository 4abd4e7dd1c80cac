"""Kubernetes provider for harbor-secrets: Harbor tokens in Secrets that pods mount (lightkube)."""

from harbor_secrets_kubernetes.provider import KubernetesProvider

__all__ = ["KubernetesProvider"]
