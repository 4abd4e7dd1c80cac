# -- the function's role: logs, the configured secrets and parameters, and nothing else ------

data "aws_iam_policy_document" "function_trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
}

resource "aws_iam_role" "function" {
  name               = "${var.function_name}-function"
  assume_role_policy = data.aws_iam_policy_document.function_trust.json
  tags               = var.tags
}

data "aws_iam_policy_document" "function" {
  statement {
    sid       = "WriteLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }

  dynamic "statement" {
    for_each = length(local.written_secret_arns) > 0 ? [1] : []
    content {
      sid = "WriteTokenSecrets"
      actions = [
        "secretsmanager:GetSecretValue",
        "secretsmanager:DescribeSecret",
        "secretsmanager:CreateSecret",
        "secretsmanager:PutSecretValue",
        "secretsmanager:UpdateSecretVersionStage",
        "secretsmanager:TagResource",
      ]
      resources = local.written_secret_arns
    }
  }

  dynamic "statement" {
    for_each = length(local.written_parameter_arns) > 0 ? [1] : []
    content {
      sid = "WriteTokenParameters"
      actions = [
        "ssm:GetParameter",
        "ssm:PutParameter",
        "ssm:AddTagsToResource",
        "ssm:ListTagsForResource",
      ]
      resources = local.written_parameter_arns
    }
  }

  dynamic "statement" {
    for_each = length(local.lock_parameter_arns) > 0 ? [1] : []
    content {
      sid       = "UseWriteLocks"
      actions   = ["ssm:GetParameter", "ssm:PutParameter", "ssm:DeleteParameter"]
      resources = local.lock_parameter_arns
    }
  }

  dynamic "statement" {
    for_each = var.client_secret_secret_arn == null ? [] : [1]
    content {
      sid       = "ReadClientSecret"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [var.client_secret_secret_arn]
    }
  }

  dynamic "statement" {
    for_each = local.client_secret_parameter_arn == null ? [] : [1]
    content {
      sid       = "ReadClientSecretParameter"
      actions   = ["ssm:GetParameter"]
      resources = [local.client_secret_parameter_arn]
    }
  }

  dynamic "statement" {
    for_each = length(var.kms_key_arns) > 0 ? [1] : []
    content {
      sid       = "UseKmsThroughSecretStores"
      actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]
      resources = var.kms_key_arns
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values = [
          "secretsmanager.${local.store_region}.amazonaws.com",
          "ssm.${local.store_region}.amazonaws.com",
        ]
      }
    }
  }
}

resource "aws_iam_role_policy" "function" {
  name   = "harbor-secrets"
  role   = aws_iam_role.function.id
  policy = data.aws_iam_policy_document.function.json
}

# -- the scheduler's role: invoke this function only ------------------------------------------

data "aws_iam_policy_document" "scheduler_trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
}

resource "aws_iam_role" "scheduler" {
  name               = "${var.function_name}-scheduler"
  assume_role_policy = data.aws_iam_policy_document.scheduler_trust.json
  tags               = var.tags
}

data "aws_iam_policy_document" "scheduler" {
  statement {
    actions   = ["lambda:InvokeFunction"]
    resources = [aws_lambda_function.this.arn, "${aws_lambda_function.this.arn}:*"]
  }
}

resource "aws_iam_role_policy" "scheduler" {
  name   = "invoke-harbor-secrets"
  role   = aws_iam_role.scheduler.id
  policy = data.aws_iam_policy_document.scheduler.json
}
