variable "compartment_id" {
  description = "OCID of the compartment."
  type        = string
}

variable "name" {
  description = "Display name of the container instance (one per slot replica, for example `calops-prod-au-blue-0`)."
  type        = string
}

variable "availability_domain" {
  description = "Availability domain name."
  type        = string
}

variable "fault_domain" {
  description = "Fault domain (`FAULT-DOMAIN-1` to `-3`); null lets OCI choose."
  type        = string
  default     = null

  validation {
    condition     = var.fault_domain == null || contains(["FAULT-DOMAIN-1", "FAULT-DOMAIN-2", "FAULT-DOMAIN-3"], coalesce(var.fault_domain, "x"))
    error_message = "fault_domain must be FAULT-DOMAIN-1, FAULT-DOMAIN-2 or FAULT-DOMAIN-3."
  }
}

variable "subnet_id" {
  description = "OCID of the private subnet."
  type        = string
}

variable "nsg_id" {
  description = "OCID of the app NSG."
  type        = string
}

variable "shape" {
  description = "Container instance shape, for example \"CI.Standard.A1.Flex\" (Ampere)."
  type        = string
}

variable "ocpus" {
  description = "OCPUs of the instance."
  type        = number
}

variable "memory_gbs" {
  description = "Memory of the instance in GB."
  type        = number
}

variable "image" {
  description = "Image pinned by digest: <registry>/<namespace>/<repository>@sha256:<64 hex>."
  type        = string

  validation {
    condition     = can(regex("^[^@\\s]+@sha256:[0-9a-f]{64}$", var.image))
    error_message = "image must be pinned by digest: <repository>@sha256:<64 lowercase hex digits>."
  }
}

variable "port" {
  description = "TCP port the service listens on (also the health-check port)."
  type        = number
}

variable "liveness_path" {
  description = "HTTP path of the container health check (failure action KILL): a liveness endpoint that does not depend on the database."
  type        = string
  default     = "/livez"
}

variable "environment" {
  description = "The container's environment. Secrets appear only as references (OCI Vault secret OCIDs the service resolves at run time with its resource principal), never as values."
  type        = map(string)
  default     = {}
}

variable "graceful_shutdown_seconds" {
  description = "Seconds the service gets between SIGTERM and SIGKILL."
  type        = number
  default     = 30
}

variable "image_pull_secret_id" {
  description = "Optional OCID of a Vault secret with registry credentials (username/password JSON); null when the instance may pull without one."
  type        = string
  default     = null
}

variable "freeform_tags" {
  description = "Tags applied to the instance."
  type        = map(string)
  default     = {}
}
