output "policy_id" {
  description = "OCID of the service policy."
  value       = oci_identity_policy.service.id
}
