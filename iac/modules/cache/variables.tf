variable "compartment_id" {
  description = "OCID of the compartment."
  type        = string
}

variable "name" {
  description = "Display name of the cache cluster."
  type        = string
}

variable "subnet_id" {
  description = "OCID of the private subnet."
  type        = string
}

variable "nsg_id" {
  description = "OCID of the cache NSG (6379 from the app NSG only)."
  type        = string
}

variable "node_count" {
  description = "Number of nodes."
  type        = number
}

variable "memory_gbs_per_node" {
  description = "Memory per node in GB."
  type        = number
}

variable "engine_version" {
  description = "Software version, for example \"REDIS_7_0\" or \"VALKEY_7_2\"."
  type        = string
}

variable "freeform_tags" {
  description = "Tags applied to the cluster."
  type        = map(string)
  default     = {}
}
