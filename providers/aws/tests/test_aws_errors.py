"""The one mapping from botocore failures to StoreError: reasons, hints, no leaked values."""

from __future__ import annotations

import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
)
from harbor_secrets_aws.errors import aws_errors, classify, reference_error, store_error

from harbor_secrets import SecretReferenceError, StoreError

WHAT = "SSM parameter '/harbor/sandbox/tower_access'"


def client_error(code: str, message: str = "") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "PutParameter")


@pytest.mark.parametrize(
    ("code", "message", "reason"),
    [
        ("ThrottlingException", "Rate exceeded", "throttled"),
        ("TooManyUpdates", "", "throttled"),
        ("AccessDeniedException", "not authorized to perform: ssm:PutParameter", "access-denied"),
        ("AccessDeniedException", "not authorized to perform: kms:Decrypt", "kms-denied"),
        ("KMSAccessDeniedException", "", "kms-denied"),
        ("KMS.DisabledException", "", "kms-denied"),
        ("InvalidKeyId", "", "kms-denied"),
        ("DecryptionFailure", "", "kms-denied"),
        ("ResourceNotFoundException", "", "not-found"),
        ("ParameterNotFound", "", "not-found"),
        ("ExpiredTokenException", "", "no-credentials"),
        ("UnrecognizedClientException", "", "no-credentials"),
        ("LimitExceededException", "too many versions", "quota"),
        ("InvalidRequestException", "marked for deletion", "deleted"),
        ("InternalServiceError", "boom", "error"),
    ],
)
def test_client_error_codes(code: str, message: str, reason: str) -> None:
    failure = classify(client_error(code, message), action="write", what=WHAT)
    assert failure.reason == reason
    assert WHAT in failure.message
    assert failure.hint


def test_sdk_exceptions() -> None:
    cases = {
        NoCredentialsError(): "no-credentials",
        NoRegionError(): "config",
        EndpointConnectionError(endpoint_url="https://ssm.eu-west-1.amazonaws.com"): "unavailable",
    }
    for exc, reason in cases.items():
        assert classify(exc, action="read", what=WHAT).reason == reason


def test_echoed_values_are_masked() -> None:
    canary = "canary-token-31415926"
    message = f"1 validation error detected: Value '{canary}' at 'value' failed; {canary}"
    error = store_error(client_error("ValidationException", message), action="write", what=WHAT)
    assert canary in message
    assert canary not in str(error)
    error = store_error(
        client_error("ValidationException", f"bad {canary}"),
        action="write",
        what=WHAT,
        redact=(canary,),
    )
    assert canary not in str(error)
    invalid = ParamValidationError(report=f"Invalid type for parameter Value, value: {canary}")
    assert canary not in str(store_error(invalid, action="write", what=WHAT))


def test_aws_errors_context_converts_and_drops_the_chain() -> None:
    with pytest.raises(StoreError) as error, aws_errors("write", WHAT):
        raise client_error("ThrottlingException")
    assert error.value.reason == "throttled"
    assert error.value.__cause__ is None
    assert error.value.__suppress_context__


def test_reference_errors_are_secret_reference_errors() -> None:
    error = reference_error(client_error("AccessDeniedException", "denied"), what=WHAT)
    assert isinstance(error, SecretReferenceError)
    assert "access denied" in str(error)
