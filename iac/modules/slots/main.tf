# Pure planning, no resources: which container instances and load balancer backends the live
# slots need, and what each instance gets. Instance `i` of a slot goes to availability domain
# `i mod #ADs` and fault domain `(i div #ADs) mod 3 + 1`, so replicas spread over availability
# domains first (where the region has several), then over fault domains.

locals {
  live = { for name, slot in var.slots : name => slot if slot.state != "absent" }

  # What each live slot was made with: its own frozen values where its record has them, the
  # stack's current ones otherwise (a slot being staged now).
  bound = { for name, slot in local.live : name => merge(var.stack_values, slot.bound) }
  ads   = { for name, slot in local.live : name => slot.availability_domains != null ? slot.availability_domains : var.availability_domains }

  instances = merge([
    for name, slot in local.live : {
      for i in range(slot.replicas) : "${name}-${i}" => {
        slot                      = name
        replica                   = i
        image                     = slot.image
        shape                     = slot.shape
        ocpus                     = slot.ocpus
        memory_gbs                = slot.memory_gbs
        graceful_shutdown_seconds = slot.graceful_shutdown_seconds
        liveness_path             = slot.liveness_path
        availability_domain       = local.ads[name][i % length(local.ads[name])]
        fault_domain              = "FAULT-DOMAIN-${floor(i / length(local.ads[name])) % 3 + 1}"
        drain                     = slot.state == "draining"
        # Literal variables, then the Terraform-known ones. Per-instance values (slot, image)
        # always come from the slot itself.
        environment = merge(slot.environment, {
          for var_name, key in slot.stack_environment :
          var_name => merge(local.bound[name], { slot = name, image = slot.image })[key]
        })
      }
    }
  ]...)
}
