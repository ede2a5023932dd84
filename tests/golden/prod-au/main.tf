# The calops stack for profile "prod-au": network, database, cache, storage, registry,
# one container instance per live deployment slot, load balancer, access policy and monitoring.

locals {
  tags = { "calops-profile" = var.profile }

  # Slots that run an instance: `active` ones take traffic, `draining` ones finish theirs.
  live_slots = { for name, slot in var.slots : name => slot if slot.state != "absent" }
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
  freeform_tags      = local.tags
}

module "registry" {
  source = "./modules/registry"

  compartment_id = var.compartment_id
  repository     = var.image_repository
  region         = var.region
  namespace      = local.object_storage_namespace
  freeform_tags  = local.tags
}

module "container" {
  source   = "./modules/container"
  for_each = local.live_slots

  compartment_id            = var.compartment_id
  name                      = "${var.name}-${each.key}"
  slot                      = each.key
  availability_domain       = local.availability_domain
  subnet_id                 = module.network.private_subnet_id
  nsg_id                    = module.network.app_nsg_id
  shape                     = var.service_shape
  ocpus                     = var.service_ocpus
  memory_gbs                = var.service_memory_gbs
  image                     = each.value.image
  port                      = var.service_port
  graceful_shutdown_seconds = var.service_graceful_shutdown_seconds
  freeform_tags             = local.tags

  # Where the service finds its dependencies (non-secret), then the profile's own variables
  # (which win on a clash). Secrets travel as Vault secret OCIDs: <NAME>_SECRET_OCID.
  environment = merge({
    CALOPS_LISTEN             = "0.0.0.0:${var.service_port}"
    CALOPS_DATABASE_HOST      = module.database.endpoint
    CALOPS_DATABASE_PORT      = "5432"
    CALOPS_DATABASE_USER      = var.db_admin_username
    REDIS_URL                 = "rediss://${module.cache.endpoint}:6379"
    CALOPS_OBJECT_STORAGE_URL = "https://objectstorage.${var.region}.oraclecloud.com/n/${local.object_storage_namespace}/b/${module.storage.bucket_name}"
    CALOPS_SHUTDOWN_TIMEOUT   = "${max(1, var.service_graceful_shutdown_seconds - 5)}s"
  }, var.service_environment)
  secret_ocids = merge({
    DATABASE_PASSWORD = var.db_admin_password_secret_id
  }, var.service_secret_ocids)
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
  freeform_tags        = local.tags

  # One backend per live slot; a draining slot's backend takes no new connections.
  backends = {
    for name, slot in local.live_slots : name => {
      ip_address = module.container[name].private_ip
      drain      = slot.state == "draining"
    }
  }
}

module "access" {
  source = "./modules/access"

  compartment_id = var.compartment_id
  name           = var.name
  bucket_name    = module.storage.bucket_name
  secret_ids     = concat([var.db_admin_password_secret_id], values(var.service_secret_ocids))
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
  freeform_tags         = local.tags
}
