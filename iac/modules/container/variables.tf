variable "compartment_id" {
  description = "OCID of the compartment."
  type        = string
}

variable "name" {
  description = "Display name of the container instance (one per slot, for example `calops-prod-au-blue`)."
  type        = string
}

variable "slot" {
  description = "Slot name (`blue`, `green`); exported to the container as CALOPS_SLOT."
  type        = string
}

variable "availability_domain" {
  description = "Availability domain name."
  type        = string
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

variable "environment" {
  description = "Non-secret environment variables."
  type        = map(string)
  default     = {}
}

variable "secret_ocids" {
  description = "Secrets as references: ENV_NAME -> OCI Vault secret OCID. The container gets ENV_NAME_SECRET_OCID and resolves the value at runtime (resource principal); no secret value is in Terraform."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for v in values(var.secret_ocids) : startswith(v, "ocid1.vaultsecret.")])
    error_message = "secret_ocids values must be OCI Vault secret OCIDs (ocid1.vaultsecret...)."
  }
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
