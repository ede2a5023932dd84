# The calops stack for profile "prod-au": network, database, cache, storage, registry,
# the container instances of the live deployment slots, load balancer, access (IAM) and
# monitoring.

locals {
  tags = { "calops-profile" = var.profile }

  # What only Terraform knows and a container is given (rendered by calops from
  # src/runtime/env.rs). A slot made earlier keeps the values it was made with.
  stack_values = {
    database_host           = module.database.endpoint
    database_port           = module.database.port
    database_ca_certificate = module.database.ca_certificate
    redis_url               = "rediss://${module.cache.endpoint}:${module.cache.port}"
    object_storage_url      = "https://objectstorage.${var.region}.oraclecloud.com/n/${local.object_storage_namespace}/b/${module.storage.bucket_name}"
  }
}

module "network" {
  source = "./modules/network"

  compartment_id              = var.compartment_id
  name                        = var.name
  vcn_cidr                    = var.vcn_cidr
  public_subnet_cidr          = var.public_subnet_cidr
  private_subnet_cidr         = var.private_subnet_cidr
  dns_label                   = var.dns_label
  services_gateway_service_id = local.services_gateway_service_id
  app_port                    = var.service_port
  freeform_tags               = local.tags
}

module "database" {
  source = "./modules/database"

  compartment_id           = var.compartment_id
  name                     = "${var.name}-db"
  subnet_id                = module.network.private_subnet_id
  nsg_id                   = module.network.db_nsg_id
  postgres_version         = var.db_postgres_version
  shape                    = var.db_shape
  ocpus                    = var.db_ocpus
  memory_gbs               = var.db_memory_gbs
  instance_count           = var.db_instance_count
  storage_iops             = var.db_storage_iops
  admin_username           = var.db_admin_username
  admin_password_secret_id = var.db_admin_password_secret_id
  backup_retention_days    = var.db_backup_retention_days
  backup_start             = var.db_backup_start
  freeform_tags            = local.tags
}

module "cache" {
  source = "./modules/cache"

  compartment_id      = var.compartment_id
  name                = "${var.name}-cache"
  subnet_id           = module.network.private_subnet_id
  nsg_id              = module.network.cache_nsg_id
  node_count          = var.cache_node_count
  memory_gbs_per_node = var.cache_memory_gbs_per_node
  engine_version      = var.cache_engine_version
  freeform_tags       = local.tags
}

module "storage" {
  source = "./modules/storage"

  compartment_id     = var.compartment_id
  namespace          = local.object_storage_namespace
  bucket_name        = var.bucket_name
  versioning         = var.bucket_versioning
  ics_retention_days = var.ics_retention_days
  # The lifecycle rules run as the Object Storage service: its policy comes first.
  lifecycle_after = [module.access.service_policy_id]
  freeform_tags   = local.tags
}

module "registry" {
  source = "./modules/registry"

  compartment_id = var.compartment_id
  repository     = var.image_repository
  region         = var.region
  namespace      = local.object_storage_namespace
  freeform_tags  = local.tags
}

# Which container instances and backends the live slots need: `active` slots take traffic,
# `draining` ones finish theirs. Each slot's record is frozen when it is staged (image, shape,
# size, replicas, environment), so a profile change reaches only the next staged slot.
module "slots" {
  source = "./modules/slots"

  slots                = var.slots
  stack_values         = local.stack_values
  availability_domains = local.availability_domains
}

module "container" {
  source   = "./modules/container"
  for_each = module.slots.instances

  compartment_id            = var.compartment_id
  name                      = "${var.name}-${each.key}"
  availability_domain       = each.value.availability_domain
  fault_domain              = each.value.fault_domain
  subnet_id                 = module.network.private_subnet_id
  nsg_id                    = module.network.app_nsg_id
  shape                     = each.value.shape
  ocpus                     = each.value.ocpus
  memory_gbs                = each.value.memory_gbs
  image                     = each.value.image
  port                      = var.service_port
  liveness_path             = each.value.liveness_path
  graceful_shutdown_seconds = each.value.graceful_shutdown_seconds
  environment               = each.value.environment
  freeform_tags             = merge(local.tags, { "calops-slot" = each.value.slot })
}

module "loadbalancer" {
  source = "./modules/loadbalancer"

  compartment_id       = var.compartment_id
  name                 = "${var.name}-lb"
  subnet_id            = module.network.public_subnet_id
  nsg_id               = module.network.lb_nsg_id
  min_bandwidth_mbps   = var.lb_min_bandwidth_mbps
  max_bandwidth_mbps   = var.lb_max_bandwidth_mbps
  certificate_id       = var.lb_certificate_id
  hostname             = var.lb_hostname
  idle_timeout_seconds = var.lb_idle_timeout_seconds
  backend_port         = var.service_port
  health_check_path    = var.service_readiness_path
  freeform_tags        = local.tags

  # One backend per container instance; a draining slot's backends take no new connections.
  backends = {
    for key, instance in module.slots.instances : key => {
      ip_address = module.container[key].private_ip
      drain      = instance.drain
    }
  }
}

# IAM writes go to the home region. The containers may read the secrets of every live slot
# (frozen ones included) and of the profile (for the next slot staged).
module "access" {
  source = "./modules/access"
  providers = {
    oci = oci.home
  }

  tenancy_id     = var.tenancy_ocid
  compartment_id = var.compartment_id
  region         = var.region
  name           = var.name
  bucket_name    = var.bucket_name
  secret_ids     = distinct(concat(module.slots.secret_ids, var.service_secret_ids))
  # The service posts its own metrics, in this namespace only.
  metrics_namespace = var.metrics_namespace
  # And sends e-mail as this approved sender only.
  mail_sender   = var.mail_sender
  freeform_tags = local.tags
}

# E-mail through Email Delivery (`[service] mail_sender`): the domain, its DKIM key, the
# approved sender.
module "email" {
  source = "./modules/email"
  count  = var.mail_sender == null ? 0 : 1

  compartment_id = var.compartment_id
  name           = var.name
  region         = var.region
  sender         = var.mail_sender
  freeform_tags  = local.tags
}

module "monitoring" {
  source = "./modules/monitoring"

  compartment_id        = var.compartment_id
  name                  = var.name
  notification_email    = var.notification_email
  load_balancer_id      = module.loadbalancer.id
  cpu_threshold_percent = var.cpu_threshold_percent
  lb_5xx_threshold      = var.lb_5xx_threshold
  latency_threshold_ms  = var.latency_threshold_ms
  service_alarms        = var.service_alarms
  freeform_tags         = local.tags
}
