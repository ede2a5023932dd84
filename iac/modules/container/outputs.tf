output "id" {
  description = "OCID of the container instance."
  value       = oci_container_instances_container_instance.this.id
}

output "private_ip" {
  description = "Private IP address of the instance's VNIC (the load balancer backend address)."
  value       = oci_container_instances_container_instance.this.vnics[0].private_ip
}

output "image" {
  description = "The image (by digest) this instance runs."
  value       = var.image
}
