"""Where AWS clients come from: one place that reads region, profile and endpoint.

Settings follow the usual AWS sources (sink options first, then ``AWS_REGION`` /
``AWS_DEFAULT_REGION``, ``AWS_PROFILE``, ``AWS_ENDPOINT_URL``), read from the environment the
core hands the provider rather than ``os.environ`` so a test or the Lambda handler decides.
Clients are cached process-wide per (service, settings): boto3 clients are thread-safe and
expensive to build (~50 ms and several MB each), and a warm Lambda should reuse the ones it
created at import. Tests inject clients with :meth:`ClientCache.put`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, NoRegionError, ProfileNotFound

from harbor_secrets import Options, StoreError

#: Standard retry mode: exponential backoff with jitter on throttling and transient errors,
#: bounded so one slow store cannot hold up a one-minute schedule.
MAX_ATTEMPTS = 4
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 10.0
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
    connect_timeout=CONNECT_TIMEOUT,
    read_timeout=READ_TIMEOUT,
    user_agent_extra="harbor-secrets",
)

#: Botocore's standard mode waits up to ``min(2**i, 20)`` s before retry ``i`` (throttling),
#: plus up to 5 s more when the service sends ``x-amz-retry-after``.
_MAX_BACKOFF = 20.0
_RETRY_AFTER_EXTRA = 5.0


def worst_call_seconds(
    attempts: int = MAX_ATTEMPTS,
    connect_timeout: float = CONNECT_TIMEOUT,
    read_timeout: float = READ_TIMEOUT,
) -> float:
    """The longest one API call can take with these settings (82 s for the defaults): every
    attempt times out, and every wait between attempts is as long as botocore allows.
    The SSM write lock is sized from this."""
    waits = sum(min(2.0**i, _MAX_BACKOFF) + _RETRY_AFTER_EXTRA for i in range(attempts - 1))
    return attempts * (connect_timeout + read_timeout) + waits


#: A boto3 client. The service stubs (types-boto3-<service>) are optional, so stay untyped.
Client = Any


@dataclass(frozen=True)
class AwsSettings:
    """The three things that pick an AWS endpoint; ``None`` means "boto3's default chain"."""

    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None

    @classmethod
    def from_options(cls, options: Options, environ: Mapping[str, str]) -> AwsSettings:
        """Sink options win over the environment; validated offline (no network)."""
        region = options.string("region") or environ.get("AWS_REGION") or None
        region = region or environ.get("AWS_DEFAULT_REGION") or None
        profile = options.string("profile") or environ.get("AWS_PROFILE") or None
        endpoint_url = options.string("endpoint_url") or environ.get("AWS_ENDPOINT_URL") or None
        if endpoint_url is not None and not endpoint_url.startswith(("https://", "http://")):
            raise options.error(
                "endpoint_url",
                "must be an http(s) URL",
                'set endpoint_url = "https://…" or remove it to use AWS\'s endpoints',
            )
        settings = cls(region=region, profile=profile, endpoint_url=endpoint_url)
        if region is None:
            settings._region_from_profile(options)
        return settings

    def _region_from_profile(self, options: Options) -> None:
        """Without an explicit region, the profile's config file must name one."""
        try:
            region = boto3.session.Session(profile_name=self.profile).region_name
        except ProfileNotFound:
            raise options.error(
                "profile",
                f"AWS profile {self.profile!r} is not configured",
                "set profile to a profile in ~/.aws/config, or remove it",
            ) from None
        if not region:
            raise options.error(
                "region",
                "no AWS region configured",
                'set region = "eu-west-1" here, or export AWS_REGION',
            )

    def describe(self) -> dict[str, str]:
        data = {"region": self.region or "(from profile)"}
        if self.profile:
            data["profile"] = self.profile
        if self.endpoint_url:
            data["endpoint_url"] = self.endpoint_url
        return data


SessionFactory = Callable[[str | None], Any]


def _new_session(profile: str | None) -> Any:
    return boto3.session.Session(profile_name=profile)


class ClientCache:
    """Thread-safe cache of clients keyed by service and settings."""

    def __init__(self, session_factory: SessionFactory = _new_session) -> None:
        self._session_factory = session_factory
        self._sessions: dict[str | None, Any] = {}
        self._clients: dict[tuple[str, AwsSettings], Client] = {}
        self._lock = threading.Lock()

    def client(self, service: str, settings: AwsSettings) -> Client:
        """The cached client, created on first use; setup problems become StoreError."""
        key = (service, settings)
        with self._lock:
            cached = self._clients.get(key)
            if cached is not None:
                return cached
            try:
                session = self._sessions.get(settings.profile)
                if session is None:
                    session = self._sessions[settings.profile] = self._session_factory(
                        settings.profile
                    )
                client = session.client(
                    service,
                    region_name=settings.region,
                    endpoint_url=settings.endpoint_url,
                    config=CLIENT_CONFIG,
                )
            except NoRegionError:
                raise StoreError(
                    f"no AWS region for {service}",
                    hint="set region in the sink, or export AWS_REGION",
                    reason="config",
                ) from None
            except (ProfileNotFound, BotoCoreError) as exc:
                raise StoreError(
                    f"cannot create the AWS {service} client ({type(exc).__name__})",
                    hint="check AWS_PROFILE and ~/.aws/config",
                    reason="config",
                ) from None
            self._clients[key] = client
            return client

    def put(self, service: str, settings: AwsSettings, client: Client) -> None:
        """Inject a client (tests, or a handler that built its own)."""
        with self._lock:
            self._clients[(service, settings)] = client

    def reset(self, session_factory: SessionFactory | None = None) -> None:
        """Forget every client (and optionally change how sessions are made), e.g. in tests."""
        with self._lock:
            self._clients.clear()
            self._sessions.clear()
            if session_factory is not None:
                self._session_factory = session_factory


_shared = ClientCache()


def shared_clients() -> ClientCache:
    """The process-wide cache every provider uses unless it was handed a client."""
    return _shared


def settings_from_environ(environ: Mapping[str, str]) -> AwsSettings:
    """Settings from the environment alone (no sink options), e.g. for the Lambda's warm-up."""
    return AwsSettings(
        region=environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or None,
        profile=environ.get("AWS_PROFILE") or None,
        endpoint_url=environ.get("AWS_ENDPOINT_URL") or None,
    )
