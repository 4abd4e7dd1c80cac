"""Build a sink from its options exactly as the core does, for a provider's own tests.

A provider's tests should construct it the way a configuration file does: the core takes
the key template out of the table, resolves ``env:``/``file:`` references from the given
environment, and hands the rest to :meth:`~harbor_secrets.Provider.from_options`. Tests
that call ``from_options`` themselves skip the part of the contract the core owns.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harbor_secrets.provider import Provider
from harbor_secrets.references import ReferenceResolver
from harbor_secrets.runtime import Sink, build_sink, provider_context


def sink_from_options(
    cls: type[Provider],
    table: Mapping[str, Any],
    *,
    environ: Mapping[str, str] | None = None,
    name: str = "test",
    source: str | None = None,
    base_dir: Path | None = None,
    skip_credentials: bool = False,
) -> Sink:
    """The sink ``[sinks.<name>]`` with ``table`` (without ``provider``) would give;
    ``skip_credentials`` builds it as ``config check --skip-references`` does."""
    env = dict(os.environ if environ is None else environ)
    resolver = ReferenceResolver(environ=env, base_dir=base_dir or Path.cwd(), source=source)
    context = provider_context(
        name, resolver=resolver, environ=env, source=source, skip_credentials=skip_credentials
    )
    return build_sink(name, cls, table, context)
