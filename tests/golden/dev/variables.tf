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

variable "tenancy_ocid" {
  description = "OCID of the tenancy (the dynamic group of the stack's container instances lives there)."
  type        = string
}

variable "home_region" {
  description = "The tenancy's home region: IAM writes (dynamic group, policies) go there."
  type        = string
}

variable "availability_domains" {
  description = "Pinned availability domains replicas are spread over; null looks them up."
  type        = list(string)
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

variable "service_port" {
  type = number
}

variable "service_readiness_path" {
  description = "Path the load balancer's health checker probes (the service's readiness)."
  type        = string
}

variable "service_secret_ids" {
  description = "OCI Vault secret OCIDs the profile gives the next staged slot (database password, [service.secrets]): granted before that slot starts."
  type        = list(string)
}

variable "slots" {
  description = "Deployment slots: name -> record (state, image pinned by digest, and for a live slot what it is made from, frozen when it was staged). The type is modules/slots' `slots` variable."
  type        = any
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

variable "metrics_namespace" {
  type = string
}

variable "mail_sender" {
  type    = string
  default = null
}

variable "service_alarms" {
  type = map(object({
    namespace        = string
    query            = string
    severity         = string
    summary          = string
    pending_duration = string
  }))
  default = {}
}
