output "function_name" {
  description = "Name of the Lambda function."
  value       = aws_lambda_function.this.function_name
}

output "function_arn" {
  description = "ARN of the Lambda function."
  value       = aws_lambda_function.this.arn
}

output "function_role_arn" {
  description = "ARN of the function's role (grant it access to anything else it must read)."
  value       = aws_iam_role.function.arn
}

output "log_group_name" {
  description = "CloudWatch log group with one JSON summary per run."
  value       = aws_cloudwatch_log_group.this.name
}

output "schedule_arn" {
  description = "ARN of the EventBridge Scheduler schedule."
  value       = aws_scheduler_schedule.this.arn
}

output "store_region" {
  description = "Region of the stores the function writes."
  value       = local.store_region
}
