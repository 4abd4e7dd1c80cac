"""The sync engine: refresh what is due, write it everywhere it goes, never go backwards.

Per run and per (credentials, environment, scope) — a *job* — the engine reads each sink's
stored record, asks the freshness policy (:mod:`harbor_secrets.freshness`) which are due,
asks the issuer for at most one token, and writes it to every due sink. Stores enforce the
monotonic rule in ``Provider.write``. Jobs run concurrently on a bounded pool; one job's or
one sink's failure is recorded and never stops the others.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from harbor_secrets.config import Config, CredentialsConfig, Job
from harbor_secrets.environments import Environment
from harbor_secrets.errors import EXIT_FAILURE, EXIT_OK, HarborSecretsError, describe_error
from harbor_secrets.freshness import TokenState, seconds_left
from harbor_secrets.hooks import Change, run_hook
from harbor_secrets.issuer_clock import IssuerClock
from harbor_secrets.provider import WriteOutcome
from harbor_secrets.record import TokenRecord, format_time
from harbor_secrets.registry import Registry
from harbor_secrets.runtime import Runtime, Sink
from harbor_secrets.secrets import Secret
from harbor_secrets.writer import writer_name

if TYPE_CHECKING:
    from harbor_secrets.token_client import IssuedToken

log = logging.getLogger(__name__)
_T = TypeVar("_T")

# Actions a sink can end a run with.
WRITTEN = "written"
FRESH = "fresh"
KEPT_NEWER = "kept-newer"
WOULD_WRITE = "would-write"
FAILED = "failed"


class TokenSource(Protocol):
    """What the engine needs from a token client (lets tests and benches inject one)."""

    def fetch(self, scope: str) -> IssuedToken: ...

    def close(self) -> None: ...


ClientFactory = Callable[[Config, Environment, CredentialsConfig, Secret], TokenSource]


def default_client_factory(
    config: Config, environment: Environment, credentials: CredentialsConfig, secret: Secret
) -> TokenSource:
    return token_client(config, environment, credentials, secret)


def token_client(
    config: Config,
    environment: Environment,
    credentials: CredentialsConfig,
    secret: Secret,
    *,
    wall_clock: Callable[[], datetime] | None = None,
) -> TokenSource:
    """The real token client for one (environment, credentials); ``wall_clock`` (this
    host's clock, by default the system's) stamps each request, so a test can run it as a
    host whose clock is wrong."""
    from harbor_secrets.token_client import ClientCredentials, TokenClient

    return TokenClient(
        environment,
        ClientCredentials(credentials.client_id, secret, credentials.auth_method),
        retry=config.http,
        default_expires_in=int(config.refresh.token_lifetime),
        wall_clock=wall_clock or (lambda: datetime.now(UTC)),
    )


@dataclass
class SinkResult:
    sink: str
    provider: str
    key: str
    action: str
    reason: str = ""
    expires_at: datetime | None = None
    error: str | None = None
    #: The sink's on_write command ran after this write: True if it succeeded.
    on_write_ok: bool | None = None
    on_write_error: str | None = None
    #: Which refresher wrote the token the sink holds (this one when written; as stored
    #: when found fresh); None when unknown (a store without it, or a refused write).
    written_by: str | None = None
    #: The lifetime the token the sink holds was granted (as read or written); None when
    #: unknown or when the store keeps no issue time (the freshness policy then bounds its
    #: expiry by ``token_lifetime``).
    lifetime: float | None = None

    @property
    def failed(self) -> bool:
        """The store failed, or its on_write command did (the token was still written)."""
        return self.action == FAILED or self.on_write_ok is False

    def to_dict(self, now: datetime) -> dict[str, Any]:
        data: dict[str, Any] = {
            "sink": self.sink,
            "provider": self.provider,
            "key": self.key,
            "action": self.action,
            "reason": self.reason,
        }
        if self.expires_at is not None:
            data["expires_at"] = format_time(self.expires_at)
            data["expires_in_seconds"] = int(seconds_left(self.expires_at, now))
        if self.error:
            data["error"] = self.error
        if self.on_write_ok is not None:
            data["on_write"] = {"ok": self.on_write_ok, "error": self.on_write_error}
        if self.written_by is not None:
            data["written_by"] = self.written_by
        return data


@dataclass
class JobResult:
    job: Job
    sinks: list[SinkResult] = field(default_factory=list)
    fetched: bool = False
    attempts: int = 0
    error: str | None = None
    error_type: str | None = None
    duration: float = 0.0
    #: The exception class that failed the whole job (metrics name the failure by it).
    error_class: type[BaseException] | None = None
    #: Seconds spent getting the token, retries included; None when none was requested.
    fetch_seconds: float | None = None
    #: Expiry of the token fetched this run (a lower bound for a sink that kept a newer one).
    token_expires_at: datetime | None = None
    #: The lifetime that token was granted.
    token_lifetime: float | None = None
    #: How far this job's issuer's clock runs ahead of this host's (IssuerClock.skew): its
    #: sinks' "expires in" are told by the issuer's clock, as the job was judged.
    skew: float = 0.0

    @property
    def failed(self) -> bool:
        return self.error is not None or any(s.failed for s in self.sinks)

    def to_dict(self, now: datetime) -> dict[str, Any]:
        data: dict[str, Any] = {
            "credentials": self.job.credentials,
            "environment": self.job.environment,
            "scope": self.job.scope,
            "fetched": self.fetched,
            "attempts": self.attempts,
            "ok": not self.failed,
            "duration_seconds": round(self.duration, 3),
            "sinks": [s.to_dict(now + timedelta(seconds=self.skew)) for s in self.sinks],
        }
        if self.error:
            data["error"] = self.error
            data["error_type"] = self.error_type
        return data


@dataclass
class SyncReport:
    results: list[JobResult]
    started_at: datetime
    finished_at: datetime
    dry_run: bool = False
    forced: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_FAILURE if any(r.failed for r in self.results) else EXIT_OK

    def count(self, action: str) -> int:
        return sum(1 for r in self.results for s in r.sinks if s.action == action)

    @property
    def token_requests(self) -> int:
        return sum(r.attempts for r in self.results)

    @property
    def on_write_failures(self) -> int:
        """Sinks whose on_write command failed in this run."""
        return len({s.sink for r in self.results for s in r.sinks if s.on_write_ok is False})

    def to_dict(self) -> dict[str, Any]:
        now = self.finished_at
        return {
            "ok": self.exit_code == EXIT_OK,
            "exit_code": self.exit_code,
            "dry_run": self.dry_run,
            "forced": self.forced,
            "started_at": format_time(self.started_at),
            "duration_seconds": round((self.finished_at - self.started_at).total_seconds(), 3),
            "counts": {
                action: self.count(action)
                for action in (WRITTEN, FRESH, KEPT_NEWER, WOULD_WRITE, FAILED)
            },
            "on_write_failed": self.on_write_failures,
            "tokens_fetched": sum(1 for r in self.results if r.fetched),
            "token_requests": self.token_requests,
            "warnings": list(self.warnings),
            "jobs": [r.to_dict(now) for r in self.results],
        }


def _traceback_wanted(exc: BaseException) -> bool:
    """Tracebacks only for unexpected errors, and only at debug level (they are scrubbed)."""
    return log.isEnabledFor(logging.DEBUG) and not isinstance(exc, HarborSecretsError)


class SyncEngine:
    """Runs one pass over every job of a configuration."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        client_factory: ClientFactory = default_client_factory,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.runtime = runtime
        self.config = runtime.config
        self.client_factory = client_factory
        #: The time every judgement reads: ``now`` (this host's clock), corrected by the
        #: issuer's once a token response shows they disagree (harbor_secrets.issuer_clock).
        self.clock = IssuerClock(now)
        # One client per (credentials, environment, secret), kept across jobs and, in watch
        # mode, across cycles: connections are reused and a refresh token the issuer hands
        # out is used in memory. A rotated secret gets a new client.
        self._clients: dict[tuple[str, str], tuple[Secret, TokenSource]] = {}
        self._clients_lock = threading.Lock()
        self._hidden = runtime.hidden_variables()
        self._store_pool: ThreadPoolExecutor | None = None  # set for the length of a run
        self._lifetime_warned: set[str] = set()
        #: The name every record this engine writes carries (``written_by``).
        self.writer = writer_name(runtime.environ)

    def _client(self, job: Job, secret: Secret) -> TokenSource:
        key = (job.credentials, job.environment)
        with self._clients_lock:
            held = self._clients.get(key)
            if held is not None and held[0] == secret:
                return held[1]
            credentials = self.config.credentials[job.credentials]
            environment = self.config.environments[job.environment]
            client = self.client_factory(self.config, environment, credentials, secret)
            self._clients[key] = (secret, client)
        if held is not None:
            held[1].close()
        return client

    def close(self) -> None:
        """Close every token client (run_sync does this; a watcher does it when it stops)."""
        with self._clients_lock:
            clients, self._clients = list(self._clients.values()), {}
        for _, client in clients:
            client.close()

    def run(
        self,
        *,
        force: bool = False,
        dry_run: bool = False,
        jobs: list[Job] | None = None,
        log_warnings: bool = True,
    ) -> SyncReport:
        """One pass; ``log_warnings=False`` lets a long-running caller log each warning once."""
        jobs = self.config.jobs() if jobs is None else jobs
        began = time.monotonic()
        # Local references fail here, before any network call (ConfigError, exit 2).
        local_secrets = self.runtime.resolve_local_secrets(jobs)
        warnings = self.runtime.warnings()
        if log_warnings:
            for note in warnings:
                log.warning("%s", note)
        workers = max(1, min(self.config.refresh.max_workers, len(jobs)))
        widest = max((len(job.sinks) for job in jobs), default=1)
        with (
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sync") as pool,
            ThreadPoolExecutor(
                max_workers=max(1, workers * widest), thread_name_prefix="store"
            ) as stores,
        ):
            self._store_pool = stores if widest > 1 else None
            try:
                futures = [
                    pool.submit(self._run_job, job, local_secrets, force=force, dry_run=dry_run)
                    for job in jobs
                ]
                results = [future.result() for future in futures]
            finally:
                self._store_pool = None
        if not dry_run:
            self._run_hooks(results)
        # Both ends by the clock as it is now: a run that learns this host's clock is wrong
        # must not report the correction as its duration.
        finished = self.clock.local()
        report = SyncReport(
            results=results,
            started_at=finished - timedelta(seconds=time.monotonic() - began),
            finished_at=finished,
            dry_run=dry_run,
            forced=force,
            warnings=warnings,
        )
        log.info(
            "sync finished",
            extra={"event": "sync.finished", **{"counts": report.to_dict()["counts"]}},
        )
        return report

    def _run_job(
        self, job: Job, local_secrets: Mapping[str, Secret], *, force: bool, dry_run: bool
    ) -> JobResult:
        began = time.monotonic()
        result = JobResult(job=job)
        try:
            self._sync_job(job, result, local_secrets, force=force, dry_run=dry_run)
        except Exception as exc:  # the job failed as a whole; other jobs carry on
            result.error = describe_error(exc)
            result.error_type = type(exc).__name__
            result.error_class = type(exc)
            result.attempts = getattr(exc, "attempts", None) or result.attempts
            for sink_result in result.sinks:
                if sink_result.action == WOULD_WRITE:
                    sink_result.action = FAILED
                    sink_result.reason = "token-request-failed"
            log.error(
                "%s: %s",
                job.label,
                result.error,
                extra={"event": "job.failed", "job": job.label, "error_type": result.error_type},
                exc_info=_traceback_wanted(exc),
            )
        result.duration = time.monotonic() - began
        return result

    def _sync_job(
        self,
        job: Job,
        result: JobResult,
        local_secrets: Mapping[str, Secret],
        *,
        force: bool,
        dry_run: bool,
    ) -> None:
        environment = self.config.environments[job.environment]
        issuer = environment.token_url
        # Each issuer's tokens expire by its clock; the skew this job judges by is kept, to
        # judge again if its token response shows a different one.
        now, judged_skew = self.clock.reading(issuer)
        result.skew = judged_skew
        sinks = [self.runtime.sinks[name] for name in job.sinks]
        result.sinks = [
            SinkResult(sink=sink.name, provider=sink.provider.name, key="", action="")
            for sink in sinks
        ]
        # The stores are independent: read them at once, then write them at once.
        reads = self._each(
            lambda pair: self._read(job, pair[0], pair[1], now, force=force),
            list(zip(sinks, result.sinks, strict=True)),
        )
        found = {sink.name: stored for sink, _, _, stored in reads}
        due: list[tuple[Sink, str, SinkResult]] = [
            (sink, key, sink_result) for sink, key, sink_result, _ in reads if key is not None
        ]
        due = self._writable(job, due)
        if not due or dry_run:
            self._warn_implausible(job, due, found)
            return
        credentials = self.config.credentials[job.credentials]
        secret = local_secrets.get(job.credentials) or self.runtime.client_secret(credentials)
        client = self._client(job, secret)
        began = time.monotonic()
        try:
            token = client.fetch(job.scope)
        finally:
            result.fetch_seconds = time.monotonic() - began
        result.fetched = True
        result.attempts = token.attempts
        self._warn_if_granted_too_long(job, token.expires_in)
        # The policy says which clock times the token (the issuer's, when this host's is
        # wrong); from then on this process judges stored records by the same time.
        timing = self.config.refresh.time_issue(
            token.issued_at,
            token.received_at,
            token.issuer_date,
            known_skew=self.clock.skew(issuer),
        )
        self.clock.learn(timing, issuer=issuer)
        result.skew = self.clock.skew(issuer)
        if result.skew != judged_skew:
            # This answer showed this host's clock wrong: what it called implausible may be
            # fresh by the issuer's time, and then it is not rewritten (a scheduled run is a
            # new process each minute: without this, every run would rewrite every token).
            due = self._rejudged(job, due, found, self.clock.now(issuer))
        self._warn_implausible(job, due, found)
        if not due:
            return
        issued = TokenRecord.issue(
            access_token=token.access_token.reveal(),
            issued_at=timing.issued_at,
            expires_in=token.expires_in,
            scope=job.scope,
            environment=job.environment,
            client_id=credentials.client_id,
            issuer=environment.token_url,
            token_type="Bearer",
            written_by=self.writer,
        )
        # Stores compare with what they hold at write time; the policy, with this run's
        # clock, tells them which stored records are not to be believed.
        record = self.config.refresh.judged(
            issued, lambda: self.clock.now(issuer), self.clock.local
        )
        result.token_expires_at = record.expires_at
        result.token_lifetime = record.granted_lifetime
        self._each(lambda item: self._write(job, item[0], item[1], item[2], record), due)

    def _warn_if_granted_too_long(self, job: Job, expires_in: float) -> None:
        """Once per token and process (watch mode runs on), when the issuer grants tokens
        longer than ``token_lifetime``: naming the job's sinks that keep no issue time."""
        bare = [
            name for name in job.sinks if not self.runtime.sinks[name].provider.stores_full_record
        ]
        too_long = self.config.refresh.granted_too_long(expires_in, bare_sinks=bare)
        if too_long is not None and job.label not in self._lifetime_warned:
            self._lifetime_warned.add(job.label)
            log.warning("%s: %s", job.label, too_long, extra={"event": "job.lifetime"})

    def _writable(
        self, job: Job, due: list[tuple[Sink, str, SinkResult]]
    ) -> list[tuple[Sink, str, SinkResult]]:
        """The due sinks a write may succeed on; the others (their store says, offline, that
        it would certainly fail) are failed now. When none is left, no token is requested."""
        writable = []
        blocked: list[SinkResult] = []
        for sink, key, sink_result in due:
            try:
                problem = sink.provider.cannot_write(key)
            except Exception:  # a bug in the check must not stop a write that may work
                log.debug("%s: cannot_write(%r) failed", sink.name, key, exc_info=True)
                problem = None
            if problem is None:
                writable.append((sink, key, sink_result))
            else:
                self._sink_failed(job, sink_result, "write-failed", problem)
                blocked.append(sink_result)
        if blocked and not writable:
            note = "no token was requested: no sink of this token could store it"
            for sink_result in blocked:
                sink_result.error = f"{sink_result.error}; {note}"
            log.error("%s: %s", job.label, note, extra={"event": "job.unwritable"})
        return writable

    def _each(self, work: Callable[[Any], _T], items: list[Any]) -> list[_T]:
        """``work`` on every item, concurrently when there are several (one per store).

        Every item finishes before anything is raised, so no store operation is still
        running when the job's result is judged.
        """
        if len(items) < 2 or self._store_pool is None:
            return [work(item) for item in items]
        futures = [self._store_pool.submit(work, item) for item in items]
        wait(futures)
        return [future.result() for future in futures]

    def _read(
        self, job: Job, sink: Sink, sink_result: SinkResult, now: datetime, *, force: bool
    ) -> tuple[Sink, str | None, SinkResult, TokenRecord | None]:
        """Read one sink and decide; the key is returned only when the sink is to be written,
        the stored record (None: none, or unreadable) always."""
        try:
            key = sink.key_for(job)
            sink_result.key = key
            stored = sink.provider.read(key)
        except Exception as exc:
            self._sink_failed(job, sink_result, "read-failed", exc)
            return sink, None, sink_result, None
        if stored is not None:
            sink_result.expires_at = stored.expires_at
            sink_result.lifetime = stored.granted_lifetime
            sink_result.written_by = stored.written_by or None
        state = self.config.refresh.assess(stored, now).state
        if force and stored is not None:
            sink_result.reason = "forced"
        elif state.needs_refresh:
            sink_result.reason = state.value
        else:
            sink_result.action = FRESH
            sink_result.reason = state.value
            return sink, None, sink_result, stored
        sink_result.action = WOULD_WRITE
        return sink, key, sink_result, stored

    def _rejudged(
        self,
        job: Job,
        due: list[tuple[Sink, str, SinkResult]],
        found: Mapping[str, TokenRecord | None],
        now: datetime,
    ) -> list[tuple[Sink, str, SinkResult]]:
        """The due sinks still due at ``now`` (the issuer's time, just learned): a record
        this host's wrong clock called implausible (behind), expired or due (ahead) may be
        fresh by the issuer's. A forced write stays forced."""
        still = []
        for sink, key, sink_result in due:
            stored = found.get(sink.name)
            state = self.config.refresh.assess(stored, now).state
            if sink_result.reason != "forced" and not state.needs_refresh:
                sink_result.action = FRESH
                sink_result.reason = state.value
                log.info(
                    "%s -> %s: fresh by the issuer's clock (this host's is wrong): kept",
                    job.label,
                    sink.name,
                    extra={"event": "sink.fresh_by_issuer", "job": job.label, "sink": sink.name},
                )
            else:
                still.append((sink, key, sink_result))
        return still

    def _warn_implausible(
        self,
        job: Job,
        due: list[tuple[Sink, str, SinkResult]],
        found: Mapping[str, TokenRecord | None],
    ) -> None:
        for sink, _, sink_result in due:
            stored = found.get(sink.name)
            if sink_result.reason != TokenState.IMPLAUSIBLE or stored is None:
                continue
            log.warning(
                "%s -> %s: the stored token expires at %s, further ahead than a token lives; "
                "it was written under a clock that was wrong (this host's or its writer's), "
                "or refresh.token_lifetime is shorter than the issuer's tokens: replacing it",
                job.label,
                sink.name,
                format_time(stored.expires_at),
                extra={"event": "sink.implausible", "job": job.label, "sink": sink.name},
            )

    def _write(
        self, job: Job, sink: Sink, key: str, sink_result: SinkResult, record: TokenRecord
    ) -> None:
        try:
            outcome = sink.provider.write(key, record)
        except Exception as exc:
            self._sink_failed(job, sink_result, "write-failed", exc)
            return
        if outcome is WriteOutcome.WRITTEN:
            sink_result.action = WRITTEN
            sink_result.expires_at = record.expires_at
            sink_result.lifetime = record.granted_lifetime
            sink_result.written_by = record.written_by
        else:
            sink_result.action = KEPT_NEWER
            sink_result.reason = "the store already holds a token expiring no earlier"
            sink_result.written_by = None  # another refresher's, unknown until read again
        by = f" by {sink_result.written_by}" if sink_result.written_by else ""
        log.info(
            "%s -> %s: %s%s",
            job.label,
            sink.name,
            sink_result.action,
            by,
            extra={
                "event": "sink." + sink_result.action,
                "job": job.label,
                "sink": sink.name,
                **({"written_by": sink_result.written_by} if sink_result.written_by else {}),
            },
        )

    def _run_hooks(self, results: list[JobResult]) -> None:
        """Each sink's on_write, once, after every write of the run (never on a dry run).

        A failure is reported on every row it covered and never undoes a write.
        """
        written: dict[str, list[tuple[JobResult, SinkResult]]] = {}
        for job_result in results:
            for sink_result in job_result.sinks:
                if sink_result.action == WRITTEN:
                    written.setdefault(sink_result.sink, []).append((job_result, sink_result))
        for name, rows in written.items():
            sink = self.runtime.sinks[name]
            if sink.on_write is None:
                continue
            changes = [
                Change(
                    credentials=row.job.credentials,
                    environment=row.job.environment,
                    scope=row.job.scope,
                    key=sink_result.key,
                    expires_at=format_time(sink_result.expires_at)
                    if sink_result.expires_at
                    else "",
                    location=sink.provider.location(sink_result.key),
                )
                for row, sink_result in rows
            ]
            error: str | None = None
            try:
                run_hook(
                    sink.on_write,
                    name,
                    changes,
                    base_environ=self.runtime.environ,
                    hidden=self._hidden,
                )
            except Exception as exc:  # a hook never undoes a write, whatever went wrong
                error = describe_error(exc)
                log.error(
                    "sink %s: %s",
                    name,
                    error,
                    extra={"event": "sink.on_write_failed", "sink": name},
                    exc_info=_traceback_wanted(exc),
                )
            for _, sink_result in rows:
                sink_result.on_write_ok = error is None
                sink_result.on_write_error = error

    def _sink_failed(self, job: Job, sink_result: SinkResult, reason: str, exc: Exception) -> None:
        sink_result.action = FAILED
        specific = getattr(exc, "reason", None)
        sink_result.reason = specific if specific and specific != "error" else reason
        sink_result.error = describe_error(exc)
        log.error(
            "%s -> %s: %s",
            job.label,
            sink_result.sink,
            sink_result.error,
            extra={"event": "sink.failed", "job": job.label, "sink": sink_result.sink},
            exc_info=_traceback_wanted(exc),
        )


def run_sync(
    config: Config,
    *,
    force: bool = False,
    dry_run: bool = False,
    registry: Registry | None = None,
    client_factory: ClientFactory = default_client_factory,
    environ: Mapping[str, str] | None = None,
) -> SyncReport:
    """Build the runtime (offline checks, exit 2 on error), run one pass, release providers."""
    with Runtime(config, registry=registry, environ=environ) as runtime:
        engine = SyncEngine(runtime, client_factory=client_factory)
        try:
            return engine.run(force=force, dry_run=dry_run)
        finally:
            engine.close()
