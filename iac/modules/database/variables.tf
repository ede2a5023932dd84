variable "compartment_id" {
  description = "OCID of the compartment."
  type        = string
}

variable "name" {
  description = "Display name of the database system."
  type        = string
}

variable "subnet_id" {
  description = "OCID of the private subnet the database lives in."
  type        = string
}

variable "nsg_id" {
  description = "OCID of the database NSG (5432 from the app NSG only)."
  type        = string
}

variable "postgres_version" {
  description = "PostgreSQL major version, for example \"16\"."
  type        = string
}

variable "shape" {
  description = "Database shape, for example \"PostgreSQL.VM.Standard.E5.Flex\"."
  type        = string
}

variable "ocpus" {
  description = "OCPUs per database node."
  type        = number
}

variable "memory_gbs" {
  description = "Memory per database node in GB."
  type        = number
}

variable "instance_count" {
  description = "Number of database nodes (1 = primary only)."
  type        = number
  default     = 1
}

variable "storage_iops" {
  description = "Provisioned storage IOPS."
  type        = number
}

variable "admin_username" {
  description = "Administrator user name."
  type        = string
}

variable "admin_password_secret_id" {
  description = "OCID of the OCI Vault secret that holds the administrator password. The password itself never enters Terraform."
  type        = string

  validation {
    condition     = startswith(var.admin_password_secret_id, "ocid1.vaultsecret.")
    error_message = "admin_password_secret_id must be an OCI Vault secret OCID (ocid1.vaultsecret...)."
  }
}

variable "admin_password_secret_version" {
  description = "Version of the Vault secret to use."
  type        = string
  default     = "1"
}

variable "backup_retention_days" {
  description = "Days to keep the daily backups."
  type        = number
}

variable "backup_start" {
  description = "Daily backup start time (UTC, HH:MM)."
  type        = string
}

variable "freeform_tags" {
  description = "Tags applied to the database system."
  type        = map(string)
  default     = {}
}
