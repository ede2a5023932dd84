# A private OCI Container Registry repository for the service image. Tags may be overwritten,
# but calops always deploys by digest.

resource "oci_artifacts_container_repository" "this" {
  compartment_id = var.compartment_id
  display_name   = var.repository
  is_public      = false
  is_immutable   = false
  freeform_tags  = var.freeform_tags
}
