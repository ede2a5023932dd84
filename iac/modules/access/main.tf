# What the service's container instances may do with their resource principal, and nothing
# more: pull images from the compartment's repositories, read the bundles of exactly the listed
# Vault secrets, and use objects in the stack's bucket. No dynamic group is needed: the
# statements match the principal type `computecontainerinstance` in this compartment.

locals {
  principal = "request.principal.type = 'computecontainerinstance', request.principal.compartment.id = '${var.compartment_id}'"
  secret_statements = [
    for id in sort(distinct(var.secret_ids)) :
    "Allow any-user to read secret-bundles in compartment id ${var.compartment_id} where ALL {${local.principal}, target.secret.id = '${id}'}"
  ]
}

resource "oci_identity_policy" "service" {
  compartment_id = var.compartment_id
  name           = "${var.name}-service"
  description    = "calops ${var.name}: container instances read their image, secrets and bucket"
  freeform_tags  = var.freeform_tags

  statements = concat([
    "Allow any-user to read repos in compartment id ${var.compartment_id} where ALL {${local.principal}}",
    "Allow any-user to manage objects in compartment id ${var.compartment_id} where ALL {${local.principal}, target.bucket.name = '${var.bucket_name}'}",
  ], local.secret_statements)
}
