# Root inputs. Values are in terraform.tfvars.json (non-secret only: secrets are passed as
# OCI Vault secret OCIDs, never as values).

variable "profile" {
  description = "calops profile name."
  type        = string
}

variable "name" {
  description = "Name prefix of every resource."
  type        = string
}

variable "region" {
  description = "OCI region identifier."
  type        = string
}

variable "compartment_id" {
  description = "OCID of the compartment."
  type        = string
}

variable "config_profile" {
  description = "Profile in ~/.oci/config used for credentials."
  type        = string
}

variable "availability_domain" {
  description = "Pinned availability domain; null looks it up."
  type        = string
  default     = null
}

variable "object_storage_namespace" {
  description = "Pinned Object Storage namespace; null looks it up."
  type        = string
  default     = null
}

variable "services_gateway_service_id" {
  description = "Pinned Oracle Services Network service OCID; null looks it up."
  type        = string
  default     = null
}

variable "vcn_cidr" {
  type = string
}

variable "public_subnet_cidr" {
  type = string
}

variable "private_subnet_cidr" {
  type = string
}

variable "dns_label" {
  type    = string
  default = null
}

variable "db_postgres_version" {
  type = string
}

variable "db_shape" {
  type = string
}

variable "db_ocpus" {
  type = number
}

variable "db_memory_gbs" {
  type = number
}

variable "db_instance_count" {
  type = number
}

variable "db_storage_iops" {
  type = number
}

variable "db_admin_username" {
  type = string
}

variable "db_admin_password_secret_id" {
  description = "OCI Vault secret OCID holding the database admin password (a reference, not the password)."
  type        = string
}

variable "db_backup_retention_days" {
  type = number
}

variable "db_backup_start" {
  type = string
}

variable "cache_node_count" {
  type = number
}

variable "cache_memory_gbs_per_node" {
  type = number
}

variable "cache_engine_version" {
  type = string
}

variable "bucket_name" {
  type = string
}

variable "bucket_versioning" {
  type = bool
}

variable "ics_retention_days" {
  type = number
}

variable "image_repository" {
  type = string
}

variable "service_shape" {
  type = string
}

variable "service_ocpus" {
  type = number
}

variable "service_memory_gbs" {
  type = number
}

variable "service_port" {
  type = number
}

variable "service_environment" {
  description = "Non-secret environment variables of the service."
  type        = map(string)
}

variable "service_secret_ocids" {
  description = "ENV_NAME -> OCI Vault secret OCID; the container gets ENV_NAME_SECRET_OCID and reads the secret at runtime."
  type        = map(string)
}

variable "service_graceful_shutdown_seconds" {
  type = number
}

variable "slots" {
  description = "Deployment slots: name -> { image (pinned by digest), state = active | draining | absent }."
  type = map(object({
    image = string
    state = string
  }))

  validation {
    condition     = alltrue([for s in values(var.slots) : contains(["active", "draining", "absent"], s.state)])
    error_message = "Every slot state must be active, draining or absent."
  }
}

variable "lb_min_bandwidth_mbps" {
  type = number
}

variable "lb_max_bandwidth_mbps" {
  type = number
}

variable "lb_certificate_id" {
  type    = string
  default = null
}

variable "lb_hostname" {
  type    = string
  default = null
}

variable "lb_idle_timeout_seconds" {
  type = number
}

variable "notification_email" {
  type    = string
  default = null
}

variable "cpu_threshold_percent" {
  type = number
}

variable "lb_5xx_threshold" {
  type = number
}

variable "latency_threshold_ms" {
  type = number
}
