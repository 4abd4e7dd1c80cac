"""What to do about an issuer that did not answer depends on why and where, said in one place.

"The issuer is down or overloaded" was the hint for every failed connection, including a
refused one on 127.0.0.1, where it means nothing listens (a stand-in issuer that stopped),
and a name that does not resolve (a URL or DNS matter). ``errors.unreachable_hint`` sits
with the words for each failure (``describe_connection_failure``).
"""

from __future__ import annotations

import pytest

from harbor_secrets.errors import (
    REFUSED,
    UNAVAILABLE_HINT,
    UNRESOLVED,
    describe_connection_failure,
    unreachable_hint,
)


@pytest.mark.parametrize(
    ("text", "local", "says"),
    [
        ("[Errno 111] Connection refused", True, "nothing listens on that port of this host"),
        ("[Errno 111] Connection refused", False, "refused the connection: it is down"),
        ("Failed to resolve 'accounts.dev.example'", False, "check the host name in the URL"),
        ("Connection reset by peer", False, UNAVAILABLE_HINT),
    ],
)
def test_the_hint_follows_the_failure(text: str, local: bool, says: str) -> None:
    reason = describe_connection_failure(ConnectionError(text))
    hint = unreachable_hint(reason, local=local)
    assert says in hint
    if reason in (REFUSED, UNRESOLVED):
        assert "overloaded" not in hint
