# A flexible public load balancer: HTTPS on 443 with a Certificates-service certificate, port 80
# redirecting to HTTPS, a WebSocket-safe idle timeout, and one backend per container instance of
# the live deployment slots.

locals {
  https = var.certificate_id != null
}

resource "oci_load_balancer_load_balancer" "this" {
  compartment_id             = var.compartment_id
  display_name               = var.name
  shape                      = "flexible"
  subnet_ids                 = [var.subnet_id]
  network_security_group_ids = [var.nsg_id]
  is_private                 = false
  freeform_tags              = var.freeform_tags

  shape_details {
    minimum_bandwidth_in_mbps = var.min_bandwidth_mbps
    maximum_bandwidth_in_mbps = var.max_bandwidth_mbps
  }
}

resource "oci_load_balancer_backend_set" "app" {
  load_balancer_id = oci_load_balancer_load_balancer.this.id
  name             = "app"
  policy           = "LEAST_CONNECTIONS"

  health_checker {
    protocol          = "HTTP"
    port              = var.backend_port
    url_path          = var.health_check_path
    return_code       = 200
    interval_ms       = 10000
    timeout_in_millis = 3000
    retries           = 3
  }
}

resource "oci_load_balancer_backend" "slot" {
  for_each = var.backends

  load_balancer_id = oci_load_balancer_load_balancer.this.id
  backendset_name  = oci_load_balancer_backend_set.app.name
  ip_address       = each.value.ip_address
  port             = var.backend_port
  drain            = each.value.drain
  backup           = false
  offline          = false
  weight           = 1
}

resource "oci_load_balancer_rule_set" "https_redirect" {
  count = local.https ? 1 : 0

  load_balancer_id = oci_load_balancer_load_balancer.this.id
  name             = "https_redirect"

  items {
    action        = "REDIRECT"
    description   = "Send every plain HTTP request to HTTPS"
    response_code = 301

    conditions {
      attribute_name  = "PATH"
      attribute_value = "/"
      operator        = "FORCE_LONGEST_PREFIX_MATCH"
    }

    redirect_uri {
      protocol = "HTTPS"
      port     = 443
      host     = "{host}"
      path     = "{path}"
      query    = "{query}"
    }
  }
}

resource "oci_load_balancer_listener" "http" {
  load_balancer_id         = oci_load_balancer_load_balancer.this.id
  name                     = "http"
  port                     = 80
  protocol                 = "HTTP"
  default_backend_set_name = oci_load_balancer_backend_set.app.name
  rule_set_names           = local.https ? [oci_load_balancer_rule_set.https_redirect[0].name] : []

  connection_configuration {
    idle_timeout_in_seconds = var.idle_timeout_seconds
  }
}

resource "oci_load_balancer_listener" "https" {
  count = local.https ? 1 : 0

  load_balancer_id         = oci_load_balancer_load_balancer.this.id
  name                     = "https"
  port                     = 443
  protocol                 = "HTTP"
  default_backend_set_name = oci_load_balancer_backend_set.app.name

  connection_configuration {
    idle_timeout_in_seconds = var.idle_timeout_seconds
  }

  ssl_configuration {
    certificate_ids         = [var.certificate_id]
    protocols               = ["TLSv1.2"]
    cipher_suite_name       = "oci-modern-ssl-cipher-suite-v1"
    server_order_preference = "ENABLED"
    verify_peer_certificate = false
  }
}
