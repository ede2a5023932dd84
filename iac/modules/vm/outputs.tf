output "id" {
  description = "OCID of the instance."
  value       = oci_core_instance.this.id
}

output "private_ip" {
  description = "Private IP of the instance (the load balancer's backend)."
  value       = oci_core_instance.this.private_ip
}

output "image_id" {
  description = "Image the instance was made from."
  value       = local.image_id
}
