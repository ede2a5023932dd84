# OCI Cache (Redis/Valkey) cluster in the private subnet behind the cache NSG.

resource "oci_redis_redis_cluster" "this" {
  compartment_id     = var.compartment_id
  display_name       = var.name
  node_count         = var.node_count
  node_memory_in_gbs = var.memory_gbs_per_node
  software_version   = var.engine_version
  subnet_id          = var.subnet_id
  nsg_ids            = [var.nsg_id]
  freeform_tags      = var.freeform_tags
}
