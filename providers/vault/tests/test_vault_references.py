"""``vault:<mount>/<path>#<field>`` references against KV v2 and KV v1."""

from __future__ import annotations

import pytest
from vault_support import BaoServer, MakeProvider, unique

from harbor_secrets import SecretReferenceError


@pytest.fixture(scope="module")
def stored_credentials(bao: BaoServer) -> dict[str, str]:
    client = bao.client()
    name = unique("creds")
    client.secrets.kv.v2.create_or_update_secret(
        path=f"harbor/{name}",
        secret={"client_id": "harbor-client", "client_secret": "v2-client-secret-9a1"},
        mount_point="secret",
    )
    client.secrets.kv.v1.create_or_update_secret(
        path=f"harbor/{name}",
        secret={"client_secret": "v1-client-secret-4c7"},
        mount_point="kv1",
        method="POST",
    )
    return {"name": name}


def test_the_documented_reference_resolves(bao: BaoServer, make_vault: MakeProvider) -> None:
    bao.client().secrets.kv.v2.create_or_update_secret(
        path="harbor/credentials",
        secret={"client_secret": "documented-secret-1f0"},
        mount_point="secret",
    )
    secret = make_vault().resolve_reference("vault:secret/harbor/credentials#client_secret")
    assert secret.reveal() == "documented-secret-1f0"
    assert str(secret) == "***"


@pytest.mark.parametrize(
    ("mount", "value"), [("secret", "v2-client-secret-9a1"), ("kv1", "v1-client-secret-4c7")]
)
def test_kv2_and_kv1_references(
    make_vault: MakeProvider, stored_credentials: dict[str, str], mount: str, value: str
) -> None:
    reference = f"vault:{mount}/harbor/{stored_credentials['name']}#client_secret"
    assert make_vault().resolve_reference(reference).reveal() == value


def test_a_reader_token_can_resolve(
    bao: BaoServer, make_vault: MakeProvider, stored_credentials: dict[str, str]
) -> None:
    provider = make_vault(environ={"VAULT_TOKEN": bao.token("harbor-token-reader")})
    reference = f"vault:secret/harbor/{stored_credentials['name']}#client_id"
    assert provider.resolve_reference(reference).reveal() == "harbor-client"


def test_missing_field_lists_the_fields_but_no_values(
    make_vault: MakeProvider, stored_credentials: dict[str, str]
) -> None:
    reference = f"vault:secret/harbor/{stored_credentials['name']}#password"
    with pytest.raises(SecretReferenceError) as caught:
        make_vault().resolve_reference(reference)
    text = str(caught.value)
    assert "'password'" in text
    assert "client_id, client_secret" in text
    assert "v2-client-secret-9a1" not in text
    assert "harbor-client" not in text


def test_missing_secret(make_vault: MakeProvider) -> None:
    with pytest.raises(SecretReferenceError, match="no secret at secret/harbor/nothing-here"):
        make_vault().resolve_reference("vault:secret/harbor/nothing-here#client_secret")


def test_missing_mount(make_vault: MakeProvider) -> None:
    with pytest.raises(SecretReferenceError) as caught:
        make_vault().resolve_reference("vault:nope/harbor/credentials#client_secret")
    assert "bao secrets enable -path=nope" in str(caught.value)


@pytest.mark.parametrize(
    "reference",
    ["vault:secret/harbor/credentials", "vault:secret#client_secret", "vault:#x", "vault:/a/b#"],
)
def test_malformed_references(make_vault: MakeProvider, reference: str) -> None:
    with pytest.raises(SecretReferenceError) as caught:
        make_vault().resolve_reference(reference)
    assert "vault:<mount>/<path>#<field>" in str(caught.value)
