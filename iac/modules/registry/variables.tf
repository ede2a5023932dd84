variable "compartment_id" {
  description = "OCID of the compartment."
  type        = string
}

variable "repository" {
  description = "Repository name inside the tenancy namespace, for example \"calops/scheduler\"."
  type        = string
}

variable "region" {
  description = "Region identifier, used to build the registry host (<region>.ocir.io)."
  type        = string
}

variable "namespace" {
  description = "Object Storage namespace of the tenancy (also the OCIR namespace)."
  type        = string
}

variable "freeform_tags" {
  description = "Tags applied to the repository."
  type        = map(string)
  default     = {}
}
