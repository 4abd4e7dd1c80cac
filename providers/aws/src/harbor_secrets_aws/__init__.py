"""harbor-secrets providers for AWS: Secrets Manager (``aws-secretsmanager``) and SSM
Parameter Store (``aws-ssm``), plus the Lambda handler (:mod:`harbor_secrets_aws.lambda_handler`).

Parameter Store is the better home for 5-minute Harbor tokens; see the README.
"""

from harbor_secrets_aws.clients import AwsSettings, ClientCache, shared_clients
from harbor_secrets_aws.secretsmanager import SecretsManagerProvider
from harbor_secrets_aws.ssm import ParameterStoreProvider

__all__ = [
    "AwsSettings",
    "ClientCache",
    "ParameterStoreProvider",
    "SecretsManagerProvider",
    "shared_clients",
]
