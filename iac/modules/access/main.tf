# Identity for the stack, written in the tenancy's home region (the caller passes its home-region
# provider as this module's `oci`):
#
# - a dynamic group of the stack's container instances (resource principal type
#   `computecontainerinstance` in the compartment);
# - what that group may do, and nothing more: pull images from the compartment's repositories,
#   read the bundles of exactly the listed Vault secrets, manage objects in the stack's
#   bucket only, and post metrics in the service's Monitoring namespace only;
# - the service policy Object Storage needs to apply the bucket's lifecycle rules.
#
# Each grant is one line of `local.grants`.

locals {
  group = "dynamic-group id ${oci_identity_dynamic_group.containers.id}"
  where = "in compartment id ${var.compartment_id}"

  grants = concat(
    [
      "Allow ${local.group} to read repos ${local.where}",
      "Allow ${local.group} to manage objects ${local.where} where target.bucket.name = '${var.bucket_name}'",
    ],
    [for id in sort(distinct(var.secret_ids)) : "Allow ${local.group} to read secret-bundles ${local.where} where target.secret.id = '${id}'"],
    var.metrics_namespace == null ? [] : ["Allow ${local.group} to use metrics ${local.where} where target.metrics.namespace = '${var.metrics_namespace}'"],
    var.extra_grants,
  )
}

resource "oci_identity_dynamic_group" "containers" {
  compartment_id = var.tenancy_id
  name           = "${var.name}-containers"
  description    = "calops ${var.name}: the stack's container instances"
  matching_rule  = "ALL {resource.type = 'computecontainerinstance', resource.compartment.id = '${var.compartment_id}'}"
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
