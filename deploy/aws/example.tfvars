# Example inputs: copy to terraform.tfvars (or pass with -var-file) and adjust.
# Build the package first: `make lambda-zip` (from the repository root).

function_name   = "harbor-secrets"
lambda_zip_path = "../../dist/harbor-secrets-lambda.zip"

# Tokens go to Parameter Store (the right store for 5-minute tokens). List every name the
# configuration renders, so the function's role can write exactly these and nothing else.
ssm_parameter_names = [
  "/harbor/sandbox/service_provider",
  "/harbor/sandbox/tower_access",
]

# The Harbor client secret lives in Secrets Manager as {"client_secret": "..."}.
client_secret_secret_arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:harbor/client-AbCdEf"

# Only needed when a sink or the client secret uses a customer managed key.
kms_key_arns = ["arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"]

config_toml = <<-TOML
  [refresh]
  refresh_before = "150s"

  [credentials.main]
  client_id = "my-harbor-client-id"
  client_secret = "aws-sm:harbor/client#client_secret"

  [sinks.params]
  provider = "aws-ssm"
  name = "/harbor/{environment}/{scope}"
  kms_key_id = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"

  [[targets]]
  credentials = "main"
  environments = ["sandbox"]
  scopes = ["service_provider", "tower_access"]
  sinks = ["params"]
TOML

tags = {
  team = "platform"
}
