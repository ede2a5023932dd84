# A private bucket for the service's blobs (ICS copies, exports). Never public.

resource "oci_objectstorage_bucket" "this" {
  compartment_id = var.compartment_id
  namespace      = var.namespace
  name           = var.bucket_name
  access_type    = "NoPublicAccess"
  storage_tier   = "Standard"
  versioning     = var.versioning ? "Enabled" : "Disabled"
  freeform_tags  = var.freeform_tags

  lifecycle {
    prevent_destroy = true
  }
}

# Object Storage runs lifecycle rules as the service itself: the policy that lets
# `objectstorage-<region>` manage this compartment's objects must exist first, or the put fails.
resource "oci_objectstorage_object_lifecycle_policy" "this" {
  namespace  = var.namespace
  bucket     = oci_objectstorage_bucket.this.name
  depends_on = [var.lifecycle_after]

  rules {
    name        = "expire-ics-copies"
    action      = "DELETE"
    is_enabled  = true
    target      = "objects"
    time_amount = var.ics_retention_days
    time_unit   = "DAYS"

    object_name_filter {
      inclusion_prefixes = ["ics/"]
    }
  }

  rules {
    name        = "expire-old-ics-versions"
    action      = "DELETE"
    is_enabled  = var.versioning
    target      = "previous-object-versions"
    time_amount = var.ics_retention_days
    time_unit   = "DAYS"

    object_name_filter {
      inclusion_prefixes = ["ics/"]
    }
  }
}
