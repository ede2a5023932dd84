output "id" {
  description = "OCID of the cache cluster."
  value       = oci_redis_redis_cluster.this.id
}

output "endpoint" {
  description = "Private FQDN of the primary endpoint (port 6379)."
  value       = oci_redis_redis_cluster.this.primary_fqdn
}

output "port" {
  description = "Port of the primary endpoint: OCI Cache serves Redis over TLS only, on 6379."
  value       = 6379
}

output "endpoint_ip" {
  description = "Private IP address of the primary endpoint."
  value       = oci_redis_redis_cluster.this.primary_endpoint_ip_address
}
