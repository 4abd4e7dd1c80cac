"""Every AWS failure becomes a typed error with a message and a fix, in this one place.

botocore raises ``ClientError`` with a service error code, or its own exceptions for
credentials, regions and connections. Both providers and the reference resolver pass what
they catch through :func:`classify`, so throttling, access denied, KMS denied and a missing
secret read the same whichever API failed. AWS messages can echo request values
("Value '…' at 'value' failed to satisfy constraint"), so they are masked before use.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from harbor_secrets import SecretReferenceError, StoreError, scrub

THROTTLING = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyUpdates",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "ThrottledException",
        "ProvisionedThroughputExceededException",
    }
)
ACCESS_DENIED = frozenset(
    {"AccessDeniedException", "AccessDenied", "UnauthorizedOperation", "UnauthorizedException"}
)
KMS = frozenset(
    {
        "KMSAccessDeniedException",
        "KMSDisabledException",
        "KMSInvalidStateException",
        "KMSNotFoundException",
        "KMSOptInRequired",
        "InvalidKeyId",  # SSM: the KeyId does not exist or cannot be used
        "DecryptionFailure",  # Secrets Manager: KMS refused to decrypt
        "EncryptionFailure",  # Secrets Manager: KMS refused to encrypt
    }
)
NOT_FOUND = frozenset(
    {"ResourceNotFoundException", "ParameterNotFound", "ParameterVersionNotFound"}
)
CREDENTIALS = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "MissingAuthenticationToken",
    }
)
QUOTA = frozenset(
    {
        "LimitExceededException",
        "ServiceQuotaExceededException",
        "ParameterLimitExceeded",
        "ParameterMaxVersionLimitExceeded",
    }
)

_ECHOED_VALUE = re.compile(r"(?i)(value\s*)('[^']*'|\"[^\"]*\"|\[[^\]]*\])")


@dataclass(frozen=True)
class Failure:
    """What went wrong, why (a short machine-readable reason) and what to do about it."""

    reason: str
    message: str
    hint: str


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ``ClientError`` ("" for anything else)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def _aws_message(exc: ClientError, redact: Iterable[str]) -> str:
    message = str(exc.response.get("Error", {}).get("Message", "")).strip()
    echoed = [match.group(2)[1:-1] for match in _ECHOED_VALUE.finditer(message)]
    for value in [*redact, *echoed]:
        if len(value) >= 4:  # an echoed value may recur unquoted further on
            message = message.replace(value, "***")
    # Last, any secret this process knows (client secret, tokens) wherever it appears.
    return scrub(_ECHOED_VALUE.sub(r"\1'***'", message))


def is_kms_failure(exc: BaseException) -> bool:
    code = error_code(exc)
    if code in KMS or code.startswith("KMS"):
        return True
    if code in ACCESS_DENIED and isinstance(exc, ClientError):
        return "kms" in _aws_message(exc, ()).lower()
    return False


def classify(exc: BaseException, *, action: str, what: str, redact: Iterable[str] = ()) -> Failure:
    """Turn a botocore exception into a :class:`Failure`; ``what`` names the resource."""
    if isinstance(exc, ClientError):
        return _classify_client_error(exc, action=action, what=what, redact=tuple(redact))
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return Failure(
            "no-credentials",
            f"no AWS credentials to {action} {what}",
            "attach a role, or set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
        )
    if isinstance(exc, NoRegionError):
        return Failure(
            "config", f"no AWS region to {action} {what}", "set region, or export AWS_REGION"
        )
    if isinstance(exc, EndpointConnectionError | BotoConnectionError | ReadTimeoutError):
        return Failure(
            "unavailable",
            f"cannot reach AWS to {action} {what} ({type(exc).__name__})",
            "check the network, the region and endpoint_url",
        )
    if isinstance(exc, ParamValidationError):  # its text can quote the value: never show it
        return Failure(
            "invalid",
            f"AWS rejected the request to {action} {what} before sending it",
            "check the sink's options (name, kms_key_id, tags)",
        )
    if isinstance(exc, BotoCoreError):
        return Failure(
            "error",
            f"AWS client error while trying to {action} {what} ({type(exc).__name__})",
            "run with -vv for details",
        )
    return Failure("error", f"unexpected {type(exc).__name__} while trying to {action} {what}", "")


def _classify_client_error(
    exc: ClientError, *, action: str, what: str, redact: tuple[str, ...]
) -> Failure:
    code = error_code(exc)
    detail = _aws_message(exc, redact)
    said = f": {detail}" if detail else ""
    if is_kms_failure(exc):
        return Failure(
            "kms-denied",
            f"KMS refused to {action} {what} ({code}){said}",
            "allow the job's role kms:Decrypt and kms:GenerateDataKey (Secrets Manager) or "
            "kms:Encrypt and kms:Decrypt (Parameter Store) on the key, in both the IAM policy "
            "and the key policy, and check that the key is enabled",
        )
    if code in THROTTLING:
        return Failure(
            "throttled",
            f"AWS throttled the request to {action} {what} ({code})",
            "the SDK already retried; if it persists, write less often or move short-lived "
            "tokens to aws-ssm",
        )
    if code in ACCESS_DENIED:
        return Failure(
            "access-denied",
            f"access denied to {action} {what}{said}",
            "grant the job's role the actions listed in the harbor-secrets-aws README on "
            "this resource",
        )
    if code in NOT_FOUND:
        return Failure(
            "not-found",
            f"{what} does not exist",
            "check the name and the region (and endpoint_url, if set)",
        )
    if code in CREDENTIALS:
        return Failure(
            "no-credentials",
            f"AWS did not accept the credentials used to {action} {what} ({code})",
            "refresh or replace the credentials (role, AWS_PROFILE, or access keys)",
        )
    if code in QUOTA:
        return Failure(
            "quota",
            f"an AWS quota stopped the request to {action} {what} ({code}){said}",
            "Secrets Manager keeps every version younger than 24 h, so frequent writes hit "
            "its versions quota: keep 5-minute tokens in aws-ssm",
        )
    if code == "InvalidRequestException" and "delet" in detail.lower():
        return Failure(
            "deleted",
            f"{what} is scheduled for deletion",
            "restore it (aws secretsmanager restore-secret --secret-id NAME) or choose "
            "another name",
        )
    return Failure(
        "error",
        f"AWS answered {code or 'an error'} to the request to {action} {what}{said}",
        "run with -vv for details",
    )


def store_error(
    exc: BaseException, *, action: str, what: str, redact: Iterable[str] = ()
) -> StoreError:
    failure = classify(exc, action=action, what=what, redact=redact)
    return StoreError(failure.message, hint=failure.hint or None, reason=failure.reason)


def reference_error(
    exc: BaseException, *, what: str, redact: Iterable[str] = ()
) -> SecretReferenceError:
    failure = classify(exc, action="read", what=what, redact=redact)
    return SecretReferenceError(failure.message, hint=failure.hint or None)


@contextmanager
def aws_errors(action: str, what: str, redact: Iterable[str] = ()) -> Iterator[None]:
    """Re-raise any botocore failure in the block as :class:`StoreError`.

    The original exception is dropped from the chain (``from None``): its text can carry
    request values, and the StoreError already says what failed and how to fix it.
    """
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise store_error(exc, action=action, what=what, redact=redact) from None
