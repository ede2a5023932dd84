output "id" {
  description = "OCID of the database system."
  value       = oci_psql_db_system.this.id
}

output "endpoint" {
  description = "FQDN of the primary endpoint (the name the database's certificate is issued for)."
  value       = data.oci_psql_db_system_connection_detail.this.primary_db_endpoint[0].fqdn
}

output "endpoint_ip" {
  description = "Private IP address of the primary endpoint."
  value       = oci_psql_db_system.this.network_details[0].primary_db_endpoint_private_ip
}

output "port" {
  description = "Port of the primary endpoint (5432)."
  value       = data.oci_psql_db_system_connection_detail.this.primary_db_endpoint[0].port
}

output "ca_certificate" {
  description = "PEM of the CA that signs the database's certificate (not a secret): the service checks the server against it."
  value       = data.oci_psql_db_system_connection_detail.this.ca_certificate
}
