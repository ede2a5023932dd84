# One container instance (one replica of a deployment slot) running the service image pinned by
# digest. Every field of `containers` (and the shape, availability and fault domain) forces a new
# instance with a new private IP, which is why calops releases by starting a new slot and moving
# the load balancer backends, never in place.

locals {
  registry_endpoint = split("/", var.image)[0]
}

resource "oci_container_instances_container_instance" "this" {
  compartment_id                       = var.compartment_id
  availability_domain                  = var.availability_domain
  fault_domain                         = var.fault_domain
  display_name                         = var.name
  shape                                = var.shape
  container_restart_policy             = "ALWAYS"
  graceful_shutdown_timeout_in_seconds = var.graceful_shutdown_seconds
  freeform_tags                        = var.freeform_tags

  shape_config {
    ocpus         = var.ocpus
    memory_in_gbs = var.memory_gbs
  }

  vnics {
    display_name          = "${var.name}-vnic"
    subnet_id             = var.subnet_id
    nsg_ids               = [var.nsg_id]
    is_public_ip_assigned = false
  }

  containers {
    display_name          = "app"
    image_url             = var.image
    environment_variables = var.environment
    # The service reads its Vault secrets and writes objects as the instance's resource
    # principal (version 2.2: OCI_RESOURCE_PRINCIPAL_* in the container's environment).
    is_resource_principal_disabled = false

    # Liveness: a failing check kills the container, so the path must not depend on the
    # database (the load balancer checks readiness separately).
    health_checks {
      name                     = "http-liveness"
      health_check_type        = "HTTP"
      path                     = var.liveness_path
      port                     = var.port
      initial_delay_in_seconds = 10
      interval_in_seconds      = 10
      timeout_in_seconds       = 5
      failure_threshold        = 3
      success_threshold        = 1
      failure_action           = "KILL"
    }
  }

  dynamic "image_pull_secrets" {
    for_each = var.image_pull_secret_id == null ? [] : [var.image_pull_secret_id]
    content {
      secret_type       = "VAULT"
      registry_endpoint = local.registry_endpoint
      secret_id         = image_pull_secrets.value
    }
  }
}
