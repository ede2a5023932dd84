variable "tenancy_id" {
  description = "OCID of the tenancy (dynamic groups live in the tenancy)."
  type        = string

  validation {
    condition     = startswith(var.tenancy_id, "ocid1.tenancy.")
    error_message = "tenancy_id must be a tenancy OCID (ocid1.tenancy...)."
  }
}

variable "compartment_id" {
  description = "OCID of the compartment that holds the stack (and the policies)."
  type        = string
}

variable "region" {
  description = "Region of the stack's bucket (names the Object Storage service principal, `objectstorage-<region>`)."
  type        = string
}

variable "name" {
  description = "Name prefix of the dynamic group and policies."
  type        = string
}

variable "members" {
  description = "Who the dynamic group holds: `containers` (the compartment's container instances, resource principals) or `instances` (its compute instances, instance principals: the `oci-vm` target)."
  type        = string
  default     = "containers"

  validation {
    condition     = contains(["containers", "instances"], var.members)
    error_message = "members must be containers or instances."
  }
}

variable "secret_ids" {
  description = "OCI Vault secret OCIDs the container instances may read (database password, service secrets)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for id in var.secret_ids : startswith(id, "ocid1.vaultsecret.")])
    error_message = "secret_ids must be OCI Vault secret OCIDs (ocid1.vaultsecret...)."
  }
}

variable "bucket_name" {
  description = "Bucket the service may read and write objects in."
  type        = string
}

variable "metrics_namespace" {
  description = "OCI Monitoring namespace the container instances may post metrics in (`use metrics` limited to it); null grants nothing."
  type        = string
  default     = null

  validation {
    condition     = var.metrics_namespace == null || can(regex("^[A-Za-z][A-Za-z0-9_]*$", var.metrics_namespace))
    error_message = "metrics_namespace must start with a letter and hold only letters, digits and underscores."
  }
}

variable "mail_sender" {
  description = "The approved sender the group's members (container instances, or the VM) send e-mail as (`use approved-senders` limited to it); null grants nothing."
  type        = string
  default     = null
}

variable "extra_grants" {
  description = "More statements for the dynamic group, written in full (e.g. `Allow dynamic-group id ... to use metrics in compartment id ... where target.metrics.namespace = 'calops'`)."
  type        = list(string)
  default     = []
}

variable "freeform_tags" {
  description = "Tags applied to the dynamic group and policies."
  type        = map(string)
  default     = {}
}
