# Identity for the stack, written in the tenancy's home region (the caller passes its home-region
# provider as this module's `oci`):
#
# - a dynamic group of the stack's container instances (resource principal type
#   `computecontainerinstance` in the compartment);
# - what that group may do, and nothing more: pull images from the compartment's repositories,
#   read the bundles of exactly the listed Vault secrets, manage objects in the stack's
#   bucket only, post metrics in the service's Monitoring namespace only, and send e-mail
#   as the one approved sender (Email Delivery's SubmitRawEmail);
# - the service policy Object Storage needs to apply the bucket's lifecycle rules.
#
# With `members = "instances"` (the `oci-vm` target) the group is the compartment's compute
# instances instead (instance principals, `instance.compartment.id`), which read the bucket and
# manage its objects (releases, reports, backups) and pull no image.
#
# Each grant is one line of `local.grants`.

locals {
  group = "dynamic-group id ${oci_identity_dynamic_group.containers.id}"
  where = "in compartment id ${var.compartment_id}"

  matching_rule = {
    containers = "ALL {resource.type = 'computecontainerinstance', resource.compartment.id = '${var.compartment_id}'}"
    instances  = "ALL {instance.compartment.id = '${var.compartment_id}'}"
  }
  member_grants = {
    containers = ["Allow ${local.group} to read repos ${local.where}"]
    instances  = ["Allow ${local.group} to read buckets ${local.where} where target.bucket.name = '${var.bucket_name}'"]
  }

  grants = concat(
    local.member_grants[var.members],
    [
      "Allow ${local.group} to manage objects ${local.where} where target.bucket.name = '${var.bucket_name}'",
    ],
    [for id in sort(distinct(var.secret_ids)) : "Allow ${local.group} to read secret-bundles ${local.where} where target.secret.id = '${id}'"],
    var.metrics_namespace == null ? [] : ["Allow ${local.group} to use metrics ${local.where} where target.metrics.namespace = '${var.metrics_namespace}'"],
    var.mail_sender == null ? [] : ["Allow ${local.group} to use approved-senders ${local.where} where target.approved-sender.emailaddress = '${var.mail_sender}'"],
    var.extra_grants,
  )
}

# (Named `containers` since before `members`; the address stays so existing stacks keep it.)
resource "oci_identity_dynamic_group" "containers" {
  compartment_id = var.tenancy_id
  name           = "${var.name}-${var.members}"
  description    = "calops ${var.name}: the stack's ${var.members == "instances" ? "compute instances" : "container instances"}"
  matching_rule  = local.matching_rule[var.members]
  freeform_tags  = var.freeform_tags
}

resource "oci_identity_policy" "service" {
  compartment_id = var.compartment_id
  name           = "${var.name}-service"
  description    = "calops ${var.name}: container instances read their image, secrets and bucket"
  freeform_tags  = var.freeform_tags
  statements     = local.grants
}

resource "oci_identity_policy" "objectstorage" {
  compartment_id = var.compartment_id
  name           = "${var.name}-objectstorage"
  description    = "calops ${var.name}: Object Storage applies the bucket's lifecycle rules"
  freeform_tags  = var.freeform_tags
  statements = [
    "Allow service objectstorage-${var.region} to manage object-family ${local.where}",
  ]
}
