variable "compartment_id" {
  description = "OCID of the compartment of the email domain and the approved sender."
  type        = string
}

variable "name" {
  description = "Name prefix (the DKIM selector is `<name>-<region>`)."
  type        = string
}

variable "region" {
  description = "The stack's region (part of the DKIM selector)."
  type        = string
}

variable "sender" {
  description = "The approved sender address the service sends from, e.g. bookings@example.com."
  type        = string

  validation {
    condition     = can(regex("^[^@\\s]+@[a-z0-9-]+(\\.[a-z0-9-]+)+$", lower(var.sender)))
    error_message = "sender must be an e-mail address whose domain has a dot, e.g. bookings@example.com."
  }
}

variable "freeform_tags" {
  description = "Tags applied to the domain, the DKIM key and the sender."
  type        = map(string)
  default     = {}
}
