# Values that differ per tenancy and region. Each comes from a data source (an OCI API call at
# plan time) unless the profile pins it in [oci]; pinned values need no API call.

data "oci_identity_availability_domains" "this" {
  compartment_id = var.compartment_id
}

data "oci_objectstorage_namespace" "this" {
  compartment_id = var.compartment_id
}

data "oci_core_services" "this" {
  filter {
    name   = "name"
    values = ["All .* Services In Oracle Services Network"]
    regex  = true
  }
}

locals {
  availability_domains        = [for ad in data.oci_identity_availability_domains.this.availability_domains : ad.name]
  object_storage_namespace    = data.oci_objectstorage_namespace.this.namespace
  services_gateway_service_id = data.oci_core_services.this.services[0].id
}
