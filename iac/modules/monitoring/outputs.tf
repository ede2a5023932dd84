output "topic_id" {
  description = "OCID of the alarm notification topic."
  value       = oci_ons_notification_topic.this.id
}

output "alarm_ids" {
  description = "Alarm OCIDs by name."
  value       = { for k, a in oci_monitoring_alarm.this : k => a.id }
}
