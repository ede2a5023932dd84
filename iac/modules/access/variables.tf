variable "compartment_id" {
  description = "OCID of the compartment that holds the stack (and the policy)."
  type        = string
}

variable "name" {
  description = "Name prefix of the policy."
  type        = string
}

variable "secret_ids" {
  description = "OCI Vault secret OCIDs the container instances may read (database password, service secrets)."
  type        = list(string)
  default     = []
}

variable "bucket_name" {
  description = "Bucket the service may read and write objects in."
  type        = string
}

variable "freeform_tags" {
  description = "Tags applied to the policy."
  type        = map(string)
  default     = {}
}
