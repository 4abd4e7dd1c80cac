variable "function_name" {
  description = "Name of the Lambda function (also names its role, log group and schedule)."
  type        = string
  default     = "harbor-secrets"
}

variable "lambda_zip_path" {
  description = "Path to the package built by `make lambda-zip` (dist/harbor-secrets-lambda.zip)."
  type        = string
}

variable "config_toml" {
  description = "The harbor-secrets configuration (TOML). It holds references, never secret values; it is passed as HARBOR_SECRETS_CONFIG_TOML."
  type        = string
}

variable "runtime" {
  description = "Lambda Python runtime; build the zip for the same version (--python-version)."
  type        = string
  default     = "python3.12"
}

variable "architecture" {
  description = "x86_64 or arm64; build the zip for the same one (--arch)."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be x86_64 or arm64."
  }
}

variable "memory_size" {
  description = "Memory in MB. One run peaks around 55 MB of RSS, so the minimum suffices."
  type        = number
  default     = 128
}

variable "timeout" {
  description = "Seconds one run may take; keep it below the schedule period so runs do not queue."
  type        = number
  default     = 50
}

variable "schedule_expression" {
  description = "How often to run. Tokens live 300 s and are refreshed 150 s before expiry."
  type        = string
  default     = "rate(1 minute)"
}

variable "max_event_age_seconds" {
  description = "The handler skips an event scheduled longer ago than this (HARBOR_SECRETS_MAX_EVENT_AGE)."
  type        = number
  default     = 90
}

variable "log_retention_in_days" {
  description = "How long CloudWatch keeps the function's logs."
  type        = number
  default     = 30
}

variable "log_kms_key_arn" {
  description = "Optional customer managed KMS key for the log group (its key policy must allow CloudWatch Logs)."
  type        = string
  default     = null
}

variable "store_region" {
  description = "Region of the stores the function writes (the parameters and secrets, their .lock parameters, the client secret parameter, KMS through them). Default: the function's own region. Set it on a second deployment in another region, with region = \"<this region>\" in every aws sink of config_toml, so both keep the same store fresh (deploy/aws/README.md)."
  type        = string
  default     = null

  validation {
    condition     = var.store_region == null || can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.store_region))
    error_message = "store_region must be an AWS region name such as eu-west-1."
  }
}

variable "secretsmanager_secret_names" {
  description = "Names of the Secrets Manager secrets the function writes (the rendered aws-secretsmanager keys)."
  type        = list(string)
  default     = []
}

variable "ssm_parameter_names" {
  description = "Names of the SSM parameters the function writes (the rendered aws-ssm keys, e.g. /harbor/sandbox/tower_access)."
  type        = list(string)
  default     = []
}

variable "kms_key_arns" {
  description = "Customer managed KMS keys used by the sinks (kms_key_id) or by the client secret. Leave empty for AWS managed keys."
  type        = list(string)
  default     = []
}

variable "client_secret_secret_arn" {
  description = "ARN of the Secrets Manager secret holding the Harbor client secret (for an aws-sm: reference)."
  type        = string
  default     = null
}

variable "client_secret_parameter_name" {
  description = "Name of the SSM parameter holding the Harbor client secret (for an ssm: reference)."
  type        = string
  default     = null
}

variable "environment_variables" {
  description = "Extra environment variables for the function, e.g. HARBOR_SANDBOX_ACCOUNTS_URL."
  type        = map(string)
  default     = {}
}

variable "tags" {
  description = "Tags for every resource the module creates."
  type        = map(string)
  default     = {}
}
