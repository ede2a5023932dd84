output "dynamic_group_id" {
  description = "OCID of the dynamic group of the stack's container instances (or compute instances, `members = \"instances\"`)."
  value       = oci_identity_dynamic_group.containers.id
}

output "policy_id" {
  description = "OCID of the container instances' policy."
  value       = oci_identity_policy.service.id
}

output "service_policy_id" {
  description = "OCID of the Object Storage service policy (the bucket's lifecycle policy waits for it)."
  value       = oci_identity_policy.objectstorage.id
}
