# Notification topic (+ e-mail subscription) and the alarms that page it: the load balancer's
# and the containers' (here), and the service's own metrics (`var.service_alarms`).

resource "oci_ons_notification_topic" "this" {
  compartment_id = var.compartment_id
  name           = "${var.name}-alarms"
  description    = "calops alarms for ${var.name}"
  freeform_tags  = var.freeform_tags
}

resource "oci_ons_subscription" "email" {
  count = var.notification_email == null ? 0 : 1

  compartment_id = var.compartment_id
  topic_id       = oci_ons_notification_topic.this.id
  protocol       = "EMAIL"
  endpoint       = var.notification_email
  freeform_tags  = var.freeform_tags
}

locals {
  infrastructure_alarms = {
    container-cpu = {
      namespace        = var.cpu_metric_namespace
      query            = "CpuUtilization[5m].mean() > ${var.cpu_threshold_percent}"
      severity         = "WARNING"
      summary          = "Service CPU above ${var.cpu_threshold_percent}% for 5 minutes"
      pending_duration = "PT5M"
    }
    lb-5xx = {
      namespace        = "oci_lbaas"
      query            = "HttpResponses5xx[5m]{resourceId = \"${var.load_balancer_id}\"}.sum() > ${var.lb_5xx_threshold}"
      severity         = "CRITICAL"
      summary          = "More than ${var.lb_5xx_threshold} HTTP 5xx responses in 5 minutes"
      pending_duration = "PT5M"
    }
    lb-latency = {
      namespace        = "oci_lbaas"
      query            = "ResponseTimeHttpHeader[5m]{resourceId = \"${var.load_balancer_id}\"}.mean() > ${var.latency_threshold_ms}"
      severity         = "WARNING"
      summary          = "Backend response time above ${var.latency_threshold_ms} ms"
      pending_duration = "PT5M"
    }
    lb-unhealthy-backends = {
      namespace        = "oci_lbaas"
      query            = "UnHealthyBackendServers[1m]{resourceId = \"${var.load_balancer_id}\"}.max() > 0"
      severity         = "CRITICAL"
      summary          = "A load balancer backend is unhealthy"
      pending_duration = "PT5M"
    }
  }
  alarms = merge(local.infrastructure_alarms, var.service_alarms)
}

resource "oci_monitoring_alarm" "this" {
  for_each = local.alarms

  compartment_id        = var.compartment_id
  metric_compartment_id = var.compartment_id
  display_name          = "${var.name}-${each.key}"
  namespace             = each.value.namespace
  query                 = each.value.query
  severity              = each.value.severity
  alarm_summary         = each.value.summary
  body                  = each.value.summary
  destinations          = [oci_ons_notification_topic.this.id]
  is_enabled            = true
  pending_duration      = each.value.pending_duration
  message_format        = "ONS_OPTIMIZED"
  freeform_tags         = var.freeform_tags
}
