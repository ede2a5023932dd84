variable "compartment_id" {
  description = "OCID of the compartment."
  type        = string
}

variable "name" {
  description = "Display name of the instance (and prefix of its volume)."
  type        = string
}

variable "availability_domain" {
  description = "Availability domain of the instance and its block volume."
  type        = string
}

variable "subnet_id" {
  description = "Private subnet of the instance (no public IP is assigned)."
  type        = string
}

variable "nsg_id" {
  description = "Network security group of the instance (ingress from the load balancer only)."
  type        = string
}

variable "shape" {
  description = "Compute shape."
  type        = string
  default     = "VM.Standard.A1.Flex"
}

variable "ocpus" {
  description = "OCPUs of the instance."
  type        = number
}

variable "memory_gbs" {
  description = "Memory of the instance in GB."
  type        = number
}

variable "boot_volume_gbs" {
  description = "Boot volume size in GB (50 is OCI's minimum)."
  type        = number
  default     = 50

  validation {
    condition     = var.boot_volume_gbs >= 50
    error_message = "boot_volume_gbs must be at least 50."
  }
}

variable "block_volume_gbs" {
  description = "Size of a block volume for PostgreSQL's data in GB; 0: none (data on the boot volume)."
  type        = number
  default     = 0

  validation {
    condition     = var.block_volume_gbs == 0 || var.block_volume_gbs >= 50
    error_message = "block_volume_gbs must be 0 or at least 50."
  }
}

variable "data_device" {
  description = "Consistent device path of the block volume (what cloud-init waits for)."
  type        = string
  default     = "/dev/oracleoci/oraclevdb"
}

variable "image_id" {
  description = "Pinned image OCID; null takes the newest Oracle Linux 9 platform image for the shape."
  type        = string
  default     = null
}

variable "user_data_base64" {
  description = "cloud-init user data, base64-encoded."
  type        = string
}

variable "freeform_tags" {
  description = "Tags applied to the instance and its volume."
  type        = map(string)
  default     = {}
}
