"""Long-lived providers (``sync --watch``): Vault tokens that expire, rotate or get revoked.

One provider instance serves every run of a watch process, so the Vault token it started
with does not outlive it: a login token reaches its TTL, Vault Agent rotates the token in
``token_file``. These tests run the real OpenBao server with TTLs of a few seconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import hvac.exceptions
import pytest
from harbor_secrets_vault import VaultProvider
from vault_support import BaoServer, MakeProvider, make_record, unique

from harbor_secrets import StoreError, WriteOutcome

MakeApprole = Callable[..., VaultProvider]


def current_token(provider: VaultProvider) -> str:
    """The token the provider is using right now (test-only peek)."""
    token = provider._connection.client().token
    assert isinstance(token, str)
    assert token
    return token


def token_is_valid(bao: BaoServer, token: str) -> bool:
    try:
        bao.client(token).auth.token.lookup_self()
    except hvac.exceptions.Forbidden:
        return False
    return True


def live_tokens(bao: BaoServer) -> set[str]:
    """Accessors of every token the server holds: a login adds one."""
    listed = bao.client().list("auth/token/accessors")
    return set(listed["data"]["keys"])


def later(seconds: int) -> datetime:
    """An issue time ``seconds`` from now, so each write is newer than the one before."""
    return datetime.now(UTC) + timedelta(seconds=seconds)


@pytest.fixture
def make_approle(bao: BaoServer, make_vault: MakeProvider) -> MakeApprole:
    """A provider that logs in with a fresh AppRole whose tokens live ``ttl`` seconds."""

    def make(*, ttl: str, max_ttl: str, policies: tuple[str, ...] = ()) -> VaultProvider:
        client = bao.client()
        mount = unique("approle")
        client.sys.enable_auth_method("approle", path=mount)
        client.auth.approle.create_or_update_approle(
            role_name="harbor",
            token_policies=["harbor-secrets-writer", *policies],
            token_ttl=ttl,
            token_max_ttl=max_ttl,
            mount_point=mount,
        )
        role_id = client.auth.approle.read_role_id(role_name="harbor", mount_point=mount)
        secret_id = client.auth.approle.generate_secret_id(role_name="harbor", mount_point=mount)
        return make_vault(
            environ={
                "RID": role_id["data"]["role_id"],
                "SID": secret_id["data"]["secret_id"],
            },
            auth={
                "method": "approle",
                "role_id": "env:RID",
                "secret_id": "env:SID",
                "mount_point": mount,
            },
        )

    return make


# -- tokens the provider logged in for -------------------------------------------------------


def test_login_token_past_its_ttl_is_replaced_by_a_new_login(
    bao: BaoServer, make_approle: MakeApprole
) -> None:
    provider = make_approle(ttl="2s", max_ttl="2s")
    path = f"harbor/{unique()}/tower_access"
    assert provider.write(path, make_record()) is WriteOutcome.WRITTEN
    first = current_token(provider)
    time.sleep(2.5)
    assert provider.write(path, make_record(issued_at=later(10))) is WriteOutcome.WRITTEN
    second = current_token(provider)
    assert second != first
    provider.close()
    assert not token_is_valid(bao, second)


def test_a_revoked_login_token_is_replaced_and_the_call_retried_once(
    bao: BaoServer, make_approle: MakeApprole
) -> None:
    provider = make_approle(ttl="5m", max_ttl="10m")
    path = f"harbor/{unique()}/tower_access"
    assert provider.write(path, make_record()) is WriteOutcome.WRITTEN
    first = current_token(provider)
    bao.client().auth.token.revoke(first)  # an operator revoked it; the next call gets a 403
    record = make_record(issued_at=later(10))
    assert provider.write(path, record) is WriteOutcome.WRITTEN
    assert provider.read(path) == record
    second = current_token(provider)
    assert second != first
    provider.close()
    assert not token_is_valid(bao, second)


def test_threads_hitting_a_dead_token_together_log_in_once(
    bao: BaoServer, make_approle: MakeApprole
) -> None:
    provider = make_approle(ttl="5m", max_ttl="10m")
    prefix = f"harbor/{unique()}"
    assert provider.read(f"{prefix}/warm-up") is None
    first = current_token(provider)
    bao.client().auth.token.revoke(first)
    before = live_tokens(bao)
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(
            pool.map(lambda n: provider.write(f"{prefix}/{n}", make_record()), range(16))
        )
    assert outcomes == [WriteOutcome.WRITTEN] * 16
    assert len(live_tokens(bao) - before) == 1  # one new login, shared by every thread
    assert current_token(provider) != first


def test_a_policy_refusal_does_not_log_in_again(bao: BaoServer, make_approle: MakeApprole) -> None:
    """The token is fine, the policy is not: the 403 stands, no second login is made."""
    provider = make_approle(ttl="5m", max_ttl="10m")
    assert provider.read(f"harbor/{unique()}/a") is None
    token = current_token(provider)
    before = live_tokens(bao)
    with pytest.raises(StoreError) as caught:
        provider.write(f"elsewhere/{unique()}/a", make_record())
    assert caught.value.reason == "permission-denied"
    assert current_token(provider) == token
    assert token_is_valid(bao, token)
    assert live_tokens(bao) == before


def test_a_token_near_its_ttl_is_renewed_then_replaced_at_its_max_ttl(
    bao: BaoServer, make_approle: MakeApprole
) -> None:
    """Less than a third of the TTL left: renew-self; once max_ttl caps that, log in again.

    ttl 6 s, max_ttl 9 s. At ~4.5 s (1.5 s left) the token is renewed; at ~7.5 s only ~1 s
    of max_ttl is left, so the provider logs in again and revokes the old token, which
    would otherwise have stayed valid until 9 s.
    """
    provider = make_approle(ttl="6s", max_ttl="9s")
    path = f"harbor/{unique()}/a"
    assert provider.write(path, make_record()) is WriteOutcome.WRITTEN
    first = current_token(provider)
    time.sleep(4.5)
    assert provider.write(path, make_record(issued_at=later(10))) is WriteOutcome.WRITTEN
    assert current_token(provider) == first  # renewed, not replaced
    ttl = bao.client().auth.token.lookup(first)["data"]["ttl"]
    assert ttl >= 3  # ~4.5 s granted (capped by max_ttl) instead of the 1.5 s that were left
    time.sleep(3.0)
    assert provider.write(path, make_record(issued_at=later(20))) is WriteOutcome.WRITTEN
    second = current_token(provider)
    assert second != first
    assert not token_is_valid(bao, first)  # revoked at once, not merely expired
    assert token_is_valid(bao, second)


def test_close_revokes_the_current_token_and_does_not_warn_about_expired_ones(
    bao: BaoServer, make_approle: MakeApprole, caplog: pytest.LogCaptureFixture
) -> None:
    provider = make_approle(ttl="2s", max_ttl="2s")
    provider.read(f"harbor/{unique()}/a")
    time.sleep(2.5)
    provider.read(f"harbor/{unique()}/a")
    token = current_token(provider)
    with caplog.at_level(logging.WARNING):
        provider.close()
    assert not token_is_valid(bao, token)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# -- tokens the provider was given -----------------------------------------------------------


def test_token_file_rotated_between_calls_is_read_again(
    bao: BaoServer, make_vault: MakeProvider, tmp_path: Path
) -> None:
    """Vault Agent writes a new token to the sink file and the old one is revoked."""
    token_file = tmp_path / ".vault-token"
    old = bao.token("harbor-secrets-writer")
    token_file.write_text(old + "\n")
    provider = make_vault(environ={"HOME": str(tmp_path)})
    path = f"harbor/{unique()}/a"
    assert provider.write(path, make_record()) is WriteOutcome.WRITTEN
    new = bao.token("harbor-secrets-writer")
    token_file.write_text(new + "\n")
    bao.client().auth.token.revoke(old)
    assert provider.write(path, make_record(issued_at=later(10))) is WriteOutcome.WRITTEN
    assert current_token(provider) == new
    provider.close()
    assert token_is_valid(bao, new)  # not ours: never revoked


def test_token_file_reference_rotated_between_calls_is_read_again(
    bao: BaoServer, make_vault: MakeProvider, tmp_path: Path
) -> None:
    token_file = tmp_path / "agent-token"
    old = bao.token("harbor-secrets-writer")
    token_file.write_text(old)
    provider = make_vault(environ={}, auth={"token": f"file:{token_file}"})
    path = f"harbor/{unique()}/a"
    assert provider.write(path, make_record()) is WriteOutcome.WRITTEN
    new = bao.token("harbor-secrets-writer")
    token_file.write_text(new)
    bao.client().auth.token.revoke(old)
    assert provider.write(path, make_record(issued_at=later(10))) is WriteOutcome.WRITTEN
    provider.close()
    assert token_is_valid(bao, new)


def test_token_file_still_holding_the_revoked_token_fails_clearly(
    bao: BaoServer, make_vault: MakeProvider, tmp_path: Path
) -> None:
    token_file = tmp_path / ".vault-token"
    token = bao.token("harbor-secrets-writer")
    token_file.write_text(token)
    provider = make_vault(environ={"HOME": str(tmp_path)})
    path = f"harbor/{unique()}/a"
    assert provider.write(path, make_record()) is WriteOutcome.WRITTEN
    bao.client().auth.token.revoke(token)
    with pytest.raises(StoreError) as caught:
        provider.write(path, make_record(issued_at=later(10)))
    error = caught.value
    assert error.reason == "token-invalid"
    assert str(token_file) in str(error)
    assert "invalid or expired" in str(error)
    assert "Vault Agent" in str(error)
    assert token not in str(error)


def test_a_revoked_vault_token_from_the_environment_is_reported_not_retried(
    bao: BaoServer, make_vault: MakeProvider
) -> None:
    token = bao.token("harbor-secrets-writer")
    provider = make_vault(environ={"VAULT_TOKEN": token})
    path = f"harbor/{unique()}/a"
    assert provider.write(path, make_record()) is WriteOutcome.WRITTEN
    bao.client().auth.token.revoke(token)
    with pytest.raises(StoreError) as caught:
        provider.write(path, make_record(issued_at=later(10)))
    error = caught.value
    assert error.reason == "token-invalid"
    assert "VAULT_TOKEN" in str(error)
    assert "never renewed" in str(error)
    assert token not in str(error)
    assert current_token(provider) == token
