output "vcn_id" {
  description = "OCID of the VCN."
  value       = oci_core_vcn.this.id
}

output "public_subnet_id" {
  description = "OCID of the public subnet (load balancer)."
  value       = oci_core_subnet.public.id
}

output "private_subnet_id" {
  description = "OCID of the private subnet (app, database, cache)."
  value       = oci_core_subnet.private.id
}

output "lb_nsg_id" {
  description = "NSG of the load balancer (80/443 from the internet)."
  value       = oci_core_network_security_group.lb.id
}

output "app_nsg_id" {
  description = "NSG of the app containers (app port from the LB NSG)."
  value       = oci_core_network_security_group.app.id
}

output "db_nsg_id" {
  description = "NSG of the database (5432 from the app NSG)."
  value       = oci_core_network_security_group.db.id
}

output "cache_nsg_id" {
  description = "NSG of the cache (6379 from the app NSG)."
  value       = oci_core_network_security_group.cache.id
}
