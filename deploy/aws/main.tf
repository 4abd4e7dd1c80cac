data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account   = data.aws_caller_identity.current.account_id
  partition = data.aws_partition.current.partition
  region    = data.aws_region.current.name
  log_group = "/aws/lambda/${var.function_name}"

  # Where the stores live: this region unless a second deployment writes another region's.
  store_region = coalesce(var.store_region, local.region)

  # Each record names the refresher that wrote it: this function, in this region.
  writer = "lambda-${var.function_name}-${local.region}"

  # Secrets Manager appends "-" and six random characters to every secret's ARN.
  written_secret_arns = [
    for name in var.secretsmanager_secret_names :
    "arn:${local.partition}:secretsmanager:${local.store_region}:${local.account}:secret:${name}-??????"
  ]
  # Hierarchical parameter names start with "/"; the ARN has no second slash for them.
  written_parameter_arns = [
    for name in var.ssm_parameter_names :
    "arn:${local.partition}:ssm:${local.store_region}:${local.account}:parameter${startswith(name, "/") ? "" : "/"}${name}"
  ]
  # aws-ssm serialises writers with a short-lived "<name>.lock" parameter next to each token.
  lock_parameter_arns = [for arn in local.written_parameter_arns : "${arn}.lock"]
  client_secret_parameter_arn = var.client_secret_parameter_name == null ? null : (
    "arn:${local.partition}:ssm:${local.store_region}:${local.account}:parameter${startswith(var.client_secret_parameter_name, "/") ? "" : "/"}${var.client_secret_parameter_name}"
  )
}

resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_338:Logs carry run summaries with secrets scrubbed; a month is enough to debug and retention is a variable.
  name              = local.log_group
  retention_in_days = var.log_retention_in_days
  kms_key_id        = var.log_kms_key_arn
  tags              = var.tags
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_116:No dead-letter queue on purpose: a dropped tick is superseded by the next one a minute later; failures surface as Lambda errors.
  #checkov:skip=CKV_AWS_117:The function must reach Harbor's public token endpoint; running it in a VPC needs a NAT gateway the module cannot assume.
  #checkov:skip=CKV_AWS_173:The environment holds only the configuration (secret references, never values); Lambda encrypts it with an AWS managed key.
  #checkov:skip=CKV_AWS_272:Code signing needs a signing profile the module cannot assume; the package is built reproducibly by make lambda-zip.
  #checkov:skip=CKV_AWS_50:X-Ray tracing adds cost and an xray:* wildcard permission for a one-minute job that logs a JSON summary per run.
  function_name    = var.function_name
  description      = "Mints Harbor Lockers access tokens and keeps them fresh in AWS secret stores (harbor-secrets)."
  role             = aws_iam_role.function.arn
  filename         = var.lambda_zip_path
  source_code_hash = filebase64sha256(var.lambda_zip_path)
  handler          = "harbor_secrets_aws.lambda_handler.handler"
  runtime          = var.runtime
  architectures    = [var.architecture]
  memory_size      = var.memory_size
  timeout          = var.timeout

  # One run at a time: overlapping runs would only race each other for the same tokens.
  reserved_concurrent_executions = 1

  environment {
    variables = merge({ HARBOR_SECRETS_WRITER = local.writer }, var.environment_variables, {
      HARBOR_SECRETS_CONFIG_TOML   = var.config_toml
      HARBOR_SECRETS_MAX_EVENT_AGE = tostring(var.max_event_age_seconds)
    })
  }

  tags       = var.tags
  depends_on = [aws_cloudwatch_log_group.this, aws_iam_role_policy.function]
}

# Asynchronous invocations: no retries and a short queue life, so a late event is dropped by
# Lambda (and, if it slips through, skipped by the handler) rather than run behind newer ones.
resource "aws_lambda_function_event_invoke_config" "this" {
  function_name                = aws_lambda_function.this.function_name
  maximum_event_age_in_seconds = 60
  maximum_retry_attempts       = 0
}
