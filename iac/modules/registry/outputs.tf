output "id" {
  description = "OCID of the repository."
  value       = oci_artifacts_container_repository.this.id
}

output "path" {
  description = "Full repository path to push to: <region>.ocir.io/<namespace>/<repository>."
  value       = "${var.region}.ocir.io/${var.namespace}/${oci_artifacts_container_repository.this.display_name}"
}
