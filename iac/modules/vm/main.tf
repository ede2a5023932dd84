# The one compute instance of an `oci-vm` stack: Ampere A1, in the private subnet without a
# public IP, its boot volume (and an optional block volume for PostgreSQL's data), cloud-init
# user data, the Compute Instance Monitoring plugin on (the CPU alarm reads its metrics), and
# only the v2 metadata endpoints (what the instance principal reads).
#
# Image: the newest Oracle Linux 9 platform image for the shape (aarch64 on A1) unless the
# profile pins `image_id`. A looked-up image is taken when the instance is made and then ignored,
# so a newer image never replaces a running VM.

data "oci_core_images" "platform" {
  count = var.image_id == null ? 1 : 0

  compartment_id           = var.compartment_id
  operating_system         = "Oracle Linux"
  operating_system_version = "9"
  shape                    = var.shape
  state                    = "AVAILABLE"
  sort_by                  = "TIMECREATED"
  sort_order               = "DESC"
}

locals {
  image_id = var.image_id != null ? var.image_id : data.oci_core_images.platform[0].images[0].id
}

resource "oci_core_instance" "this" {
  compartment_id      = var.compartment_id
  availability_domain = var.availability_domain
  display_name        = var.name
  shape               = var.shape
  freeform_tags       = var.freeform_tags

  shape_config {
    ocpus         = var.ocpus
    memory_in_gbs = var.memory_gbs
  }

  source_details {
    source_type             = "image"
    source_id               = local.image_id
    boot_volume_size_in_gbs = var.boot_volume_gbs
  }

  create_vnic_details {
    subnet_id        = var.subnet_id
    assign_public_ip = false
    nsg_ids          = [var.nsg_id]
    hostname_label   = "app"
  }

  metadata = {
    user_data = var.user_data_base64
  }

  # PostgreSQL's data volume, made and attached with the instance (so it is there at first
  # boot, at the consistent device path cloud-init waits for), and kept if the instance goes.
  dynamic "launch_volume_attachments" {
    for_each = var.block_volume_gbs > 0 ? [var.block_volume_gbs] : []
    content {
      type         = "paravirtualized"
      device       = var.data_device
      display_name = "${var.name}-data"

      launch_create_volume_details {
        volume_creation_type = "ATTRIBUTES"
        size_in_gbs          = tostring(launch_volume_attachments.value)
        display_name         = "${var.name}-data"
      }
    }
  }
  preserve_data_volumes_created_at_launch = true

  launch_options {
    is_consistent_volume_naming_enabled = true
  }

  agent_config {
    is_monitoring_disabled = false

    plugins_config {
      name          = "Compute Instance Monitoring"
      desired_state = "ENABLED"
    }
  }

  instance_options {
    are_legacy_imds_endpoints_disabled = true
  }

  lifecycle {
    ignore_changes = [source_details[0].source_id]
  }
}
