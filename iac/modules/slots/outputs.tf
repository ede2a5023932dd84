output "instances" {
  description = "Container instances of the live slots: `<slot>-<replica>` -> what the instance is made from, where it runs, and whether its backend drains."
  value       = local.instances
}

output "records" {
  description = "Each live slot's record with the Terraform-known values it was made with (`bound`, `availability_domains`) and the keys of its instances: read back by calops and given again unchanged."
  value = {
    for name, slot in local.live : name => merge(slot, {
      bound                = { for k, v in local.bound[name] : k => v }
      availability_domains = local.ads[name]
      instance_keys        = [for i in range(slot.replicas) : "${name}-${i}"]
    })
  }
}

output "secret_ids" {
  description = "Every Vault secret a live slot's containers read (sorted, no duplicates)."
  value       = sort(distinct(flatten([for slot in values(local.live) : slot.secret_ids])))
}
