output "id" {
  description = "OCID of the load balancer."
  value       = oci_load_balancer_load_balancer.this.id
}

output "public_ip" {
  description = "Public IP address of the load balancer."
  value       = oci_load_balancer_load_balancer.this.ip_address_details[0].ip_address
}

output "url" {
  description = "Public URL of the service."
  value = format("%s://%s",
    local.https ? "https" : "http",
    coalesce(var.hostname, oci_load_balancer_load_balancer.this.ip_address_details[0].ip_address),
  )
}

output "backend_set_name" {
  description = "Name of the backend set (for health queries)."
  value       = oci_load_balancer_backend_set.app.name
}
