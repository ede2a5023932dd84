variable "slots" {
  description = "Deployment slots: name -> record. A live slot's record is frozen when it is staged (image, shape, size, replicas, environment); `bound` and `availability_domains` hold the Terraform-known values it was made with, once the stack's `slots` output has reported them."
  type = map(object({
    state                     = string
    image                     = optional(string)
    shape                     = optional(string)
    ocpus                     = optional(number)
    memory_gbs                = optional(number)
    replicas                  = optional(number, 1)
    graceful_shutdown_seconds = optional(number, 30)
    liveness_path             = optional(string, "/livez")
    environment               = optional(map(string), {})
    stack_environment         = optional(map(string), {})
    secret_ids                = optional(list(string), [])
    bound                     = optional(map(string), {})
    availability_domains      = optional(list(string))
  }))

  validation {
    condition     = alltrue([for s in values(var.slots) : contains(["active", "draining", "absent"], s.state)])
    error_message = "Every slot state must be active, draining or absent."
  }

  validation {
    condition = alltrue([
      for s in values(var.slots) : s.state == "absent" || (
        s.image != null && s.shape != null && s.ocpus != null && s.memory_gbs != null && s.replicas >= 1
      )
    ])
    error_message = "A live slot needs an image, a shape, ocpus, memory_gbs and at least one replica."
  }
}

variable "stack_values" {
  description = "The current values only Terraform knows, by key (database_host, redis_url, object_storage_url). A slot uses them until its record carries its own (`bound`)."
  type        = map(string)
}

variable "availability_domains" {
  description = "The availability domains replicas are spread over (pinned or looked up). A slot uses them until its record carries its own."
  type        = list(string)

  validation {
    condition     = length(var.availability_domains) >= 1
    error_message = "At least one availability domain is needed."
  }
}
