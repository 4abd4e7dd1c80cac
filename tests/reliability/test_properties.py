"""Properties, with hypothesis: the token-response parser only ever raises the project's own
errors, and two overlapping runs — any interleaving of their reads, fetches and writes —
always leave the newest token in every store.

No example database is written (``database=None``) and examples are derandomized, so a run
is reproducible and leaves nothing in the repository.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from harbor_secrets_envfile import EnvFileProvider
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict

from harbor_secrets import (
    HarborSecretsError,
    Options,
    Provider,
    ProviderContext,
    Secret,
    TokenRecord,
    WriteOutcome,
)
from harbor_secrets._http_retry import Answer
from harbor_secrets._token_response import RequestContext, error_for_answer, parse_success
from harbor_secrets.config import Config, CredentialsConfig, load_config
from harbor_secrets.environments import Environment
from harbor_secrets.errors import IssuerError
from harbor_secrets.freshness import CLOCK_ALLOWANCE
from harbor_secrets.registry import Registry
from harbor_secrets.runtime import Runtime, Sink
from harbor_secrets.sync import KEPT_NEWER, WRITTEN, SyncEngine, SyncReport
from harbor_secrets.testing.memory import MemoryProvider, MemoryStore
from harbor_secrets.token_client import IssuedToken

from .report import ReliabilityLog

PROFILE = settings(
    database=None,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
CANARY = "canary-parser-secret-0b9e44d1"
Secret(CANARY)  # registered, as the client secret is in a real run
CTX = RequestContext(
    "http://127.0.0.1:8401/realms/harbor/protocol/openid-connect/token",
    "sandbox",
    "service_provider",
    "client_credentials",
)
NOW = datetime(2030, 1, 1, tzinfo=UTC)
quiet = logging.getLogger("reliability.properties")
quiet.disabled = True

# -- the token-response parser ------------------------------------------------------------

texts = st.one_of(
    st.text(max_size=40),
    st.just(CANARY),
    st.builds(lambda a, b: a + CANARY + b, st.text(max_size=5), st.text(max_size=5)),
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | texts,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
numbers = st.one_of(
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers().map(str),
    st.floats().map(str),
    texts,
    st.booleans(),
    json_values,
)
TOKEN_FIELDS = {
    "access_token": st.one_of(texts, json_values, st.just(f"tok-{CANARY}")),
    "token_type": st.one_of(st.sampled_from(["Bearer", "bearer", " Bearer ", "mac"]), texts),
    "expires_in": numbers,
    "scope": st.one_of(
        st.sampled_from(["service_provider", "service_provider profile", "tower_access"]),
        json_values,
    ),
    "refresh_token": st.one_of(st.none(), texts),
    "refresh_expires_in": numbers,
    "error": texts,
    "error_description": texts,
}
token_bodies = st.fixed_dictionaries({}, optional=TOKEN_FIELDS)
# A valid Keycloak-shaped success with some fields replaced: reaches every validation step.
near_valid_bodies = st.builds(
    lambda overrides, token: {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "service_provider profile email",
        "refresh_token": None,
        "refresh_expires_in": 0,
        **overrides,
    },
    st.lists(st.sampled_from(sorted(TOKEN_FIELDS)), max_size=2, unique=True).flatmap(
        lambda names: st.fixed_dictionaries({name: TOKEN_FIELDS[name] for name in names})
    ),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=8, max_size=40),
)
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda value: json.dumps(value).encode()),
    token_bodies.map(lambda value: json.dumps(value).encode()),
    near_valid_bodies.map(lambda value: json.dumps(value).encode()),
    st.just(b"<html><body>502 Bad Gateway</body></html>"),
)
answers = st.builds(
    Answer,
    status=st.one_of(st.integers(min_value=100, max_value=599), st.just(200)),
    headers=st.dictionaries(
        st.sampled_from(["Content-Type", "Location", "Retry-After", "X-Other"]), texts, max_size=3
    ).map(CaseInsensitiveDict),
    body=bodies,
    truncated=st.one_of(st.booleans(), st.just(False)),
    sent_at=st.just(NOW),
)


def _no_canary(error: BaseException) -> None:
    text = f"{error}\n{error!r}\n{getattr(error, 'hint', '')}"
    assert CANARY not in text


def test_parser_raises_only_harbor_secrets_errors(reliability_log: ReliabilityLog) -> None:
    examples = {"ok": 0, "refused": 0}

    @settings(PROFILE, max_examples=400)
    @given(answers)
    def prop(answer: Answer) -> None:
        try:
            payload = parse_success(answer, CTX, default_expires_in=300, logger=quiet)
        except HarborSecretsError as exc:  # anything else fails the property
            examples["refused"] += 1
            _no_canary(exc)
            return
        examples["ok"] += 1
        assert payload.access_token.reveal().strip()
        assert 1 <= payload.expires_in <= 86_400
        assert payload.token_type.lower() == "bearer"

    prop()
    reliability_log.properties.append(
        f"`parse_success` on {sum(examples.values())} generated answers (any status, "
        "headers, truncation; bodies of random bytes, random JSON and token-shaped objects "
        "with every field of every type): it only ever returned a validated token "
        f"({examples['ok']}) or raised a `HarborSecretsError` subclass "
        f"({examples['refused']}); no message carried the registered canary secret."
    )


def test_error_mapping_never_raises(reliability_log: ReliabilityLog) -> None:
    count = [0]

    @settings(PROFILE, max_examples=400)
    @given(answers, st.one_of(st.none(), st.text(max_size=40)))  # the note is our own text
    def prop(answer: Answer, note: str | None) -> None:
        count[0] += 1
        error = error_for_answer(answer, CTX, note=note)
        assert isinstance(error, IssuerError)
        _no_canary(error)

    prop()
    reliability_log.properties.append(
        f"`error_for_answer` on {count[0]} generated answers: always returned an "
        "`IssuerError` subclass, never raised, never echoed the canary secret."
    )


# -- two overlapping runs, every interleaving --------------------------------------------


class Turnstile:
    """Lets two runs take turns: step *i* belongs to run ``schedule[i]``; once the schedule
    is used up (or the other run has finished) a run goes on alone. Steps never overlap."""

    def __init__(self, schedule: list[int]) -> None:
        self.schedule = schedule
        self.position = 0
        self.finished = [False, False]
        self.condition = threading.Condition()

    @contextmanager
    def turn(self, who: int) -> Iterator[None]:
        with self.condition:
            ok = self.condition.wait_for(
                lambda: (
                    self.finished[1 - who]
                    or self.position >= len(self.schedule)
                    or self.schedule[self.position] == who
                ),
                timeout=10,
            )
            assert ok, "turnstile stuck"
            try:
                yield
            finally:
                self.position += 1
                self.condition.notify_all()

    def finish(self, who: int) -> None:
        with self.condition:
            self.finished[who] = True
            self.condition.notify_all()


class Gated(Provider):
    """A provider whose every read and write waits for its run's turn."""

    name: ClassVar[str] = "gated"

    def __init__(self, inner: Provider, gate: Turnstile, who: int) -> None:
        self.inner = inner
        self.gate = gate
        self.who = who

    @classmethod
    def from_options(cls, options: Options, context: ProviderContext) -> Gated:
        raise NotImplementedError

    def normalize_key(self, key: str) -> str:
        return self.inner.normalize_key(key)

    def read(self, key: str) -> TokenRecord | None:
        with self.gate.turn(self.who):
            return self.inner.read(key)

    def write(self, key: str, record: TokenRecord) -> WriteOutcome:
        with self.gate.turn(self.who):
            return self.inner.write(key, record)


@dataclass
class GatedSource:
    """The token source of one run: a fetch also waits for its turn; each scope's token
    expires at the offset hypothesis chose."""

    gate: Turnstile
    who: int
    offsets: Mapping[str, int]
    fetched: dict[str, IssuedToken] = field(default_factory=dict)

    def factory(
        self, config: Config, environment: Environment, creds: CredentialsConfig, secret: Secret
    ) -> GatedSource:
        return self

    def fetch(self, scope: str) -> IssuedToken:
        with self.gate.turn(self.who):
            token = IssuedToken(
                access_token=Secret(f"tok-run{self.who}-{scope}-{uuid.uuid4().hex}"),
                token_type="Bearer",
                expires_in=300,
                granted_scope=scope,
                refresh_token=None,
                issued_at=NOW + timedelta(seconds=self.offsets[scope]),
                attempts=1,
            )
            self.fetched[scope] = token
            return token

    def close(self) -> None:
        pass


SCOPES = ("service_provider", "tower_access")
REGISTRY = Registry(extra={"memory": MemoryProvider})


def _config(memory: str, env_file: Path) -> str:
    return f"""
[refresh]
refresh_before = "150s"
max_workers = 1

[credentials.main]
client_id = "harbor-test-client"
client_secret = "env:SECRET"

[sinks.memory]
provider = "memory"
name = "{memory}"

[sinks.local]
provider = "envfile"
path = "{env_file}"

[[targets]]
environments = ["sandbox"]
scopes = {json.dumps(list(SCOPES))}
sinks = ["memory", "local"]
"""


offsets = st.integers(min_value=-250, max_value=250)
#: A run's token is issued by its own clock, the one the engine runs by: never further in the
#: future than the allowance for clocks (beyond it, a stored record is implausible).
run_offsets = st.integers(min_value=-250, max_value=int(CLOCK_ALLOWANCE))
run_plans = st.fixed_dictionaries({scope: run_offsets for scope in SCOPES})


def _run(config: Config, gate: Turnstile, who: int, source: GatedSource, force: bool) -> SyncReport:
    runtime = Runtime(config, registry=REGISTRY, environ={"SECRET": "the-secret"})
    try:
        for name, sink in list(runtime.sinks.items()):
            runtime.sinks[name] = Sink(name, Gated(sink.provider, gate, who), sink.key_template)
        engine = SyncEngine(runtime, client_factory=source.factory, now=lambda: NOW)
        return engine.run(force=force)
    finally:
        gate.finish(who)
        runtime.close()


def test_overlapping_runs_leave_the_newest_token(reliability_log: ReliabilityLog) -> None:
    count = [0]

    @settings(PROFILE, max_examples=150)
    @given(
        plans=st.tuples(run_plans, run_plans),
        forces=st.tuples(st.booleans(), st.booleans()),
        initial=st.fixed_dictionaries({scope: st.none() | offsets for scope in SCOPES}),
        schedule=st.lists(st.integers(min_value=0, max_value=1), max_size=24),
    )
    def prop(
        plans: tuple[dict[str, int], dict[str, int]],
        forces: tuple[bool, bool],
        initial: dict[str, int | None],
        schedule: list[int],
    ) -> None:
        count[0] += 1
        with tempfile.TemporaryDirectory() as directory:
            memory_name = f"prop-{uuid.uuid4().hex}"
            env_file = Path(directory) / "harbor.env"
            config = load_config(text=_config(memory_name, env_file), environ={})
            memory = MemoryStore.get(memory_name)
            envfile = EnvFileProvider(env_file)
            stores: dict[str, Any] = {"memory": memory, "local": envfile}
            candidates: dict[tuple[str, str], list[TokenRecord]] = {}
            for scope in SCOPES:
                offset = initial[scope]
                if offset is None:
                    continue
                record = TokenRecord.issue(
                    access_token=f"tok-initial-{scope}",
                    issued_at=NOW + timedelta(seconds=offset),
                    expires_in=300,
                    scope=scope,
                    environment="sandbox",
                    client_id="harbor-test-client",
                    issuer="initial",
                )
                memory.put(f"harbor/sandbox/{scope}", record)
                envfile.write(f"HARBOR_SANDBOX_{scope.upper()}", record)
                if offset > CLOCK_ALLOWANCE:
                    continue  # written under a clock far ahead: it must be replaced, not win
                for name in stores:
                    candidates.setdefault((name, scope), []).append(record)
            gate = Turnstile(schedule)
            sources = [GatedSource(gate, who, plans[who]) for who in (0, 1)]
            reports: list[SyncReport | None] = [None, None]

            def run(who: int) -> None:
                reports[who] = _run(config, gate, who, sources[who], forces[who])

            threads = [threading.Thread(target=run, args=(who,)) for who in (0, 1)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=30)
                assert not thread.is_alive(), "a run never finished"
            # Every run that tried to write a sink (written or kept-newer) offered its token.
            for who, report in enumerate(reports):
                assert report is not None
                assert report.exit_code == 0
                for job in report.results:
                    for sink in job.sinks:
                        if sink.action in (WRITTEN, KEPT_NEWER):
                            token = sources[who].fetched[job.job.scope]
                            record = TokenRecord.issue(
                                access_token=token.access_token.reveal(),
                                issued_at=token.issued_at,
                                expires_in=300,
                                scope=job.job.scope,
                                environment="sandbox",
                                client_id="harbor-test-client",
                                issuer="run",
                            )
                            candidates.setdefault((sink.sink, job.job.scope), []).append(record)
            for (sink_name, scope), offered in candidates.items():
                key = (
                    f"harbor/sandbox/{scope}"
                    if sink_name == "memory"
                    else f"HARBOR_SANDBOX_{scope.upper()}"
                )
                stored = stores[sink_name].read(key)
                assert stored is not None
                assert stored.access_token.reveal() != f"tok-initial-{scope}" or (
                    (initial[scope] or 0) <= CLOCK_ALLOWANCE
                ), "an implausible record survived"
                newest = max(record.expires_at for record in offered)
                assert stored.expires_at == newest, (sink_name, scope)
                winners = {r.access_token.reveal() for r in offered if r.expires_at == newest}
                assert stored.access_token.reveal() in winners
            MemoryStore.get(memory_name).clear()

    prop()
    reliability_log.properties.append(
        f"Two overlapping runs of the real sync engine, {count[0]} generated cases: random "
        "token expiries for each run and scope (ties included), random forced or due-only "
        "runs, random records already stored, and a random interleaving of every read, "
        "token fetch and write of the two runs, against the in-memory store and the "
        "env-file provider at once. Every store always ended holding the record with the "
        "latest expiry among those stored before and those either run tried to write; a "
        "record stored before that was issued more than 30 s ahead of the runs' clock "
        "(implausible: written under a wrong clock) never survived."
    )


@pytest.mark.parametrize("schedule", [[0] * 10 + [1] * 10, [1] * 10 + [0] * 10, [0, 1] * 10])
def test_turnstile_orders_steps(schedule: list[int]) -> None:
    """The interleaving machinery itself: steps happen in exactly the scheduled order."""
    gate = Turnstile(schedule)
    seen: list[int] = []

    def worker(who: int) -> None:
        for _ in range(10):
            with gate.turn(who):
                seen.append(who)
        gate.finish(who)

    threads = [threading.Thread(target=worker, args=(who,)) for who in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert seen == schedule
