variable "compartment_id" {
  description = "OCID of the compartment."
  type        = string
}

variable "namespace" {
  description = "Object Storage namespace of the tenancy."
  type        = string
}

variable "bucket_name" {
  description = "Name of the bucket."
  type        = string
}

variable "versioning" {
  description = "Keep object versions."
  type        = bool
  default     = true
}

variable "ics_retention_days" {
  description = "Days after which ICS copies (objects under `ics/`) expire."
  type        = number
  default     = 30

  validation {
    condition     = var.ics_retention_days >= 1
    error_message = "ics_retention_days must be at least 1."
  }
}

variable "lifecycle_after" {
  description = "IDs of what must exist before the lifecycle policy: the IAM policy with `Allow service objectstorage-<region> to manage object-family in compartment ...` (the access module's `service_policy_id`)."
  type        = list(string)
  default     = []
}

variable "freeform_tags" {
  description = "Tags applied to the bucket."
  type        = map(string)
  default     = {}
}
