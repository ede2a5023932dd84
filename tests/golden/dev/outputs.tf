output "lb_public_ip" {
  description = "Public IP address of the load balancer."
  value       = module.loadbalancer.public_ip
}

output "lb_url" {
  description = "Public URL of the service."
  value       = module.loadbalancer.url
}

output "load_balancer_id" {
  description = "OCID of the load balancer (for backend health queries)."
  value       = module.loadbalancer.id
}

output "backend_set_name" {
  description = "Name of the load balancer's backend set."
  value       = module.loadbalancer.backend_set_name
}

output "slots" {
  description = "Live deployment slots: each slot's record (what calops gives again on every apply, with the Terraform-known values it was made with) and its container instances and backends."
  value = {
    for name, record in module.slots.records : name => merge(record, {
      instances = [
        for key in record.instance_keys : {
          key                 = key
          instance_id         = module.container[key].id
          private_ip          = module.container[key].private_ip
          backend             = "${module.container[key].private_ip}:${var.service_port}"
          availability_domain = module.slots.instances[key].availability_domain
          fault_domain        = module.slots.instances[key].fault_domain
        }
      ]
    })
  }
}

output "bucket" {
  description = "Name of the private bucket."
  value       = module.storage.bucket_name
}

output "object_storage_namespace" {
  description = "Object Storage (and OCIR) namespace of the tenancy."
  value       = local.object_storage_namespace
}

output "database_endpoint" {
  description = "Private IP of the PostgreSQL primary (port 5432)."
  value       = module.database.endpoint
}

output "cache_endpoint" {
  description = "Private FQDN of the cache primary (port 6379)."
  value       = module.cache.endpoint
}

output "repository_path" {
  description = "Container repository to push the service image to."
  value       = module.registry.path
}

output "dynamic_group_id" {
  description = "Dynamic group of the stack's container instances (for more grants)."
  value       = module.access.dynamic_group_id
}

output "alarm_topic_id" {
  description = "Notification topic the alarms publish to."
  value       = module.monitoring.topic_id
}

output "mail_dkim_cname" {
  description = "The DKIM CNAME record the mail sender's domain must publish (null without [service] mail_sender)."
  value       = var.mail_sender == null ? null : module.email[0].dkim_cname
}
