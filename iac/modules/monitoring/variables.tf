variable "compartment_id" {
  description = "OCID of the compartment (alarms and the metrics they watch)."
  type        = string
}

variable "name" {
  description = "Name prefix of the topic and alarms."
  type        = string
}

variable "notification_email" {
  description = "E-mail address subscribed to the alarm topic; null creates the topic without a subscription."
  type        = string
  default     = null
}

variable "load_balancer_id" {
  description = "OCID of the load balancer to watch."
  type        = string
}

variable "cpu_metric_namespace" {
  description = "Metric namespace of the service's CPU: `oci_computecontainerinstance` (container instances) or `oci_computeagent` (a compute instance, via its Compute Instance Monitoring plugin)."
  type        = string
  default     = "oci_computecontainerinstance"

  validation {
    condition     = contains(["oci_computecontainerinstance", "oci_computeagent"], var.cpu_metric_namespace)
    error_message = "cpu_metric_namespace must be oci_computecontainerinstance or oci_computeagent."
  }
}

variable "cpu_threshold_percent" {
  description = "Alarm when container CPU stays above this percentage."
  type        = number
  default     = 75
}

variable "lb_5xx_threshold" {
  description = "Alarm when the load balancer returns more 5xx responses than this in 5 minutes."
  type        = number
  default     = 10
}

variable "latency_threshold_ms" {
  description = "Alarm when the mean backend response time exceeds this (ms)."
  type        = number
  default     = 500
}

variable "service_alarms" {
  description = "Alarms on the service's own metrics (rendered by calops from runtime::telemetry), by key."
  type = map(object({
    namespace        = string
    query            = string
    severity         = string
    summary          = string
    pending_duration = string
  }))
  default = {}
}

variable "freeform_tags" {
  description = "Tags applied to the topic and alarms."
  type        = map(string)
  default     = {}
}
