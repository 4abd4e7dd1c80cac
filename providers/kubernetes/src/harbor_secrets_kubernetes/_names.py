"""Which names Kubernetes accepts: Secret names (DNS-1123 subdomains) and namespaces (labels).

Checked offline, before any request, so a template that renders an impossible name is a
configuration error naming the sink (exit 2), not a 422 from the API server at run time.
The rules are the API server's own (``IsDNS1123Subdomain`` / ``IsDNS1123Label`` in
k8s.io/apimachinery); the messages say which part of the rule a name breaks.
"""

from __future__ import annotations

import re

from harbor_secrets import InvalidKeyError

_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN_RE = re.compile(f"{_LABEL}(\\.{_LABEL})*")
_LABEL_RE = re.compile(_LABEL)
MAX_SECRET_NAME = 253
MAX_NAMESPACE = 63

SECRET_NAME_RULE = (
    "a DNS-1123 subdomain: lower-case letters, digits, '-' and '.', starting and ending "
    f"with a letter or digit, at most {MAX_SECRET_NAME} characters"
)
_NAME_FIX = (
    "use only lower-case letters, digits and '-' in the template and in the credentials and "
    'environment names it uses, e.g. name = "harbor-{environment}-{scope}"'
)


def why_not_subdomain(name: str, limit: int = MAX_SECRET_NAME) -> str | None:
    """What is wrong with ``name`` as a DNS-1123 subdomain, or None if nothing is."""
    if not name:
        return "is empty"
    if len(name) > limit:
        return f"is {len(name)} characters long (at most {limit})"
    if any(c.isupper() for c in name):
        return "has upper-case letters"
    if _SUBDOMAIN_RE.fullmatch(name):
        return None
    bad = sorted({c for c in name if not (c.isascii() and (c.isalnum() or c in "-."))})
    if bad:
        shown = " ".join(repr(c) for c in bad)
        return f"has characters other than lower-case letters, digits, '-' and '.': {shown}"
    return "does not start and end with a letter or digit (also around each '.')"


def secret_name(rendered: str) -> str:
    """The Secret name for a rendered key: underscores become hyphens, nothing else changes.

    Scopes are ``service_provider`` and ``tower_access``, and an underscore is never valid
    in a Secret name, so that one change is always made. Nothing is lower-cased or
    dropped: the name must match the pre-created Secret and the Role's resourceNames
    exactly, so every other difference is reported for the configuration to fix.
    """
    name = rendered.replace("_", "-")
    problem = why_not_subdomain(name)
    if problem is not None:
        shown = f"{name!r} (after '_' → '-') " if name != rendered else ""
        raise InvalidKeyError(
            f"is not a valid Kubernetes Secret name: {shown}{problem}; a Secret name must be "
            f"{SECRET_NAME_RULE}",
            _NAME_FIX,
        )
    return name


def why_not_namespace(name: str) -> str | None:
    """What is wrong with ``name`` as a namespace (a DNS-1123 label), or None."""
    if not name:
        return "is empty"
    if len(name) > MAX_NAMESPACE:
        return f"is {len(name)} characters long (at most {MAX_NAMESPACE})"
    if not _LABEL_RE.fullmatch(name):
        return (
            "is not a DNS-1123 label (lower-case letters, digits and '-', starting and "
            "ending with a letter or digit)"
        )
    return None
