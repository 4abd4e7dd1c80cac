resource "aws_scheduler_schedule" "this" {
  #checkov:skip=CKV_AWS_297:The schedule's input is a fixed event with no secret in it; a customer managed key would add cost and nothing to protect.
  name                = var.function_name
  description         = "Runs harbor-secrets every minute."
  schedule_expression = var.schedule_expression
  state               = "ENABLED"

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_lambda_function.this.arn
    role_arn = aws_iam_role.scheduler.arn

    # An EventBridge-shaped event whose "time" is when this run was due: the handler compares
    # it with now and skips late deliveries. A heredoc, not jsonencode(), because jsonencode
    # escapes "<" and ">" and Scheduler would then not substitute its context attributes.
    input = <<-EOT
      {"version": "0", "id": "<aws.scheduler.execution-id>", "detail-type": "Scheduled Event", "source": "aws.scheduler", "account": "${local.account}", "time": "<aws.scheduler.scheduled-time>", "region": "${local.region}", "resources": ["<aws.scheduler.schedule-arn>"], "detail": {}}
    EOT

    retry_policy {
      maximum_event_age_in_seconds = 60
      maximum_retry_attempts       = 0
    }
  }
}
