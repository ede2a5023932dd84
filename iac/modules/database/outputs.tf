output "id" {
  description = "OCID of the database system."
  value       = oci_psql_db_system.this.id
}

output "endpoint" {
  description = "Private IP address of the primary endpoint (port 5432)."
  value       = oci_psql_db_system.this.network_details[0].primary_db_endpoint_private_ip
}
