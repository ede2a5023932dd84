variable "compartment_id" {
  description = "OCID of the compartment that holds the network."
  type        = string
}

variable "name" {
  description = "Name prefix for every resource (for example `calops-prod-au`)."
  type        = string
}

variable "vcn_cidr" {
  description = "CIDR block of the VCN."
  type        = string
}

variable "public_subnet_cidr" {
  description = "CIDR block of the public subnet (load balancer only)."
  type        = string
}

variable "private_subnet_cidr" {
  description = "CIDR block of the private subnet (app, database, cache)."
  type        = string
}

variable "dns_label" {
  description = "DNS label of the VCN (letters and digits, at most 15); null disables VCN DNS labels."
  type        = string
  default     = null
}

variable "services_gateway_service_id" {
  description = "OCID of the region's \"All <region> Services In Oracle Services Network\" service (data source oci_core_services)."
  type        = string
}

variable "app_port" {
  description = "TCP port the application containers listen on."
  type        = number
}

variable "freeform_tags" {
  description = "Tags applied to every resource."
  type        = map(string)
  default     = {}
}
