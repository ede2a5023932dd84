# One VCN with a public subnet (load balancer only) and a private subnet (app, database, cache).
# All filtering is done with network security groups (least privilege); both subnets carry an
# empty security list so that the VCN's default list (which opens SSH to the world) is not used.

resource "oci_core_vcn" "this" {
  compartment_id = var.compartment_id
  display_name   = "${var.name}-vcn"
  cidr_blocks    = [var.vcn_cidr]
  dns_label      = var.dns_label
  freeform_tags  = var.freeform_tags
}

resource "oci_core_internet_gateway" "this" {
  compartment_id = var.compartment_id
  vcn_id         = oci_core_vcn.this.id
  display_name   = "${var.name}-igw"
  enabled        = true
  freeform_tags  = var.freeform_tags
}

resource "oci_core_nat_gateway" "this" {
  compartment_id = var.compartment_id
  vcn_id         = oci_core_vcn.this.id
  display_name   = "${var.name}-nat"
  freeform_tags  = var.freeform_tags
}

resource "oci_core_service_gateway" "this" {
  compartment_id = var.compartment_id
  vcn_id         = oci_core_vcn.this.id
  display_name   = "${var.name}-sgw"
  freeform_tags  = var.freeform_tags

  services {
    service_id = var.services_gateway_service_id
  }
}

locals {
  # The route destination of a service gateway is the service's CIDR label, which OCI derives
  # from the service name: "All SYD Services In Oracle Services Network" ->
  # "all-syd-services-in-oracle-services-network".
  services_cidr_label = replace(lower(one(oci_core_service_gateway.this.services).service_name), " ", "-")
}

resource "oci_core_route_table" "public" {
  compartment_id = var.compartment_id
  vcn_id         = oci_core_vcn.this.id
  display_name   = "${var.name}-public-rt"
  freeform_tags  = var.freeform_tags

  route_rules {
    description       = "Internet access for the load balancer"
    destination       = "0.0.0.0/0"
    destination_type  = "CIDR_BLOCK"
    network_entity_id = oci_core_internet_gateway.this.id
  }
}

resource "oci_core_route_table" "private" {
  compartment_id = var.compartment_id
  vcn_id         = oci_core_vcn.this.id
  display_name   = "${var.name}-private-rt"
  freeform_tags  = var.freeform_tags

  route_rules {
    description       = "Outbound internet (image pulls, mail APIs) through NAT"
    destination       = "0.0.0.0/0"
    destination_type  = "CIDR_BLOCK"
    network_entity_id = oci_core_nat_gateway.this.id
  }

  route_rules {
    description       = "Oracle services (Object Storage, Vault, OCIR) without the internet"
    destination       = local.services_cidr_label
    destination_type  = "SERVICE_CIDR_BLOCK"
    network_entity_id = oci_core_service_gateway.this.id
  }
}

# An explicit, empty security list: every rule lives in the NSGs below.
resource "oci_core_security_list" "none" {
  compartment_id = var.compartment_id
  vcn_id         = oci_core_vcn.this.id
  display_name   = "${var.name}-no-rules"
  freeform_tags  = var.freeform_tags
}

resource "oci_core_subnet" "public" {
  compartment_id             = var.compartment_id
  vcn_id                     = oci_core_vcn.this.id
  display_name               = "${var.name}-public"
  cidr_block                 = var.public_subnet_cidr
  dns_label                  = var.dns_label == null ? null : "pub"
  route_table_id             = oci_core_route_table.public.id
  security_list_ids          = [oci_core_security_list.none.id]
  prohibit_public_ip_on_vnic = false
  freeform_tags              = var.freeform_tags
}

resource "oci_core_subnet" "private" {
  compartment_id             = var.compartment_id
  vcn_id                     = oci_core_vcn.this.id
  display_name               = "${var.name}-private"
  cidr_block                 = var.private_subnet_cidr
  dns_label                  = var.dns_label == null ? null : "priv"
  route_table_id             = oci_core_route_table.private.id
  security_list_ids          = [oci_core_security_list.none.id]
  prohibit_public_ip_on_vnic = true
  prohibit_internet_ingress  = true
  freeform_tags              = var.freeform_tags
}

# ---------------------------------------------------------------------------------------------
# Network security groups: one per tier.

resource "oci_core_network_security_group" "lb" {
  compartment_id = var.compartment_id
  vcn_id         = oci_core_vcn.this.id
  display_name   = "${var.name}-lb"
  freeform_tags  = var.freeform_tags
}

resource "oci_core_network_security_group" "app" {
  compartment_id = var.compartment_id
  vcn_id         = oci_core_vcn.this.id
  display_name   = "${var.name}-app"
  freeform_tags  = var.freeform_tags
}

resource "oci_core_network_security_group" "db" {
  compartment_id = var.compartment_id
  vcn_id         = oci_core_vcn.this.id
  display_name   = "${var.name}-db"
  freeform_tags  = var.freeform_tags
}

resource "oci_core_network_security_group" "cache" {
  compartment_id = var.compartment_id
  vcn_id         = oci_core_vcn.this.id
  display_name   = "${var.name}-cache"
  freeform_tags  = var.freeform_tags
}

# Load balancer: HTTP and HTTPS from the internet (the only ingress from 0.0.0.0/0).
resource "oci_core_network_security_group_security_rule" "lb_ingress_http" {
  network_security_group_id = oci_core_network_security_group.lb.id
  description               = "HTTP from the internet (redirected to HTTPS)"
  direction                 = "INGRESS"
  protocol                  = "6"
  source_type               = "CIDR_BLOCK"
  source                    = "0.0.0.0/0"

  tcp_options {
    destination_port_range {
      min = 80
      max = 80
    }
  }
}

resource "oci_core_network_security_group_security_rule" "lb_ingress_https" {
  network_security_group_id = oci_core_network_security_group.lb.id
  description               = "HTTPS from the internet"
  direction                 = "INGRESS"
  protocol                  = "6"
  source_type               = "CIDR_BLOCK"
  source                    = "0.0.0.0/0"

  tcp_options {
    destination_port_range {
      min = 443
      max = 443
    }
  }
}

resource "oci_core_network_security_group_security_rule" "lb_egress_app" {
  network_security_group_id = oci_core_network_security_group.lb.id
  description               = "Load balancer to the app port"
  direction                 = "EGRESS"
  protocol                  = "6"
  destination_type          = "NETWORK_SECURITY_GROUP"
  destination               = oci_core_network_security_group.app.id

  tcp_options {
    destination_port_range {
      min = var.app_port
      max = var.app_port
    }
  }
}

# App: its port only from the load balancer NSG.
resource "oci_core_network_security_group_security_rule" "app_ingress_lb" {
  network_security_group_id = oci_core_network_security_group.app.id
  description               = "App port from the load balancer only"
  direction                 = "INGRESS"
  protocol                  = "6"
  source_type               = "NETWORK_SECURITY_GROUP"
  source                    = oci_core_network_security_group.lb.id

  tcp_options {
    destination_port_range {
      min = var.app_port
      max = var.app_port
    }
  }
}

resource "oci_core_network_security_group_security_rule" "app_egress_https" {
  network_security_group_id = oci_core_network_security_group.app.id
  description               = "HTTPS out (registry, OCI APIs, mail APIs)"
  direction                 = "EGRESS"
  protocol                  = "6"
  destination_type          = "CIDR_BLOCK"
  destination               = "0.0.0.0/0"

  tcp_options {
    destination_port_range {
      min = 443
      max = 443
    }
  }
}

resource "oci_core_network_security_group_security_rule" "app_egress_services" {
  network_security_group_id = oci_core_network_security_group.app.id
  description               = "Oracle services through the service gateway"
  direction                 = "EGRESS"
  protocol                  = "6"
  destination_type          = "SERVICE_CIDR_BLOCK"
  destination               = local.services_cidr_label

  tcp_options {
    destination_port_range {
      min = 443
      max = 443
    }
  }
}

resource "oci_core_network_security_group_security_rule" "app_egress_db" {
  network_security_group_id = oci_core_network_security_group.app.id
  description               = "PostgreSQL"
  direction                 = "EGRESS"
  protocol                  = "6"
  destination_type          = "NETWORK_SECURITY_GROUP"
  destination               = oci_core_network_security_group.db.id

  tcp_options {
    destination_port_range {
      min = 5432
      max = 5432
    }
  }
}

resource "oci_core_network_security_group_security_rule" "app_egress_cache" {
  network_security_group_id = oci_core_network_security_group.app.id
  description               = "Redis"
  direction                 = "EGRESS"
  protocol                  = "6"
  destination_type          = "NETWORK_SECURITY_GROUP"
  destination               = oci_core_network_security_group.cache.id

  tcp_options {
    destination_port_range {
      min = 6379
      max = 6379
    }
  }
}

# Database: PostgreSQL only from the app NSG.
resource "oci_core_network_security_group_security_rule" "db_ingress_app" {
  network_security_group_id = oci_core_network_security_group.db.id
  description               = "PostgreSQL from the app only"
  direction                 = "INGRESS"
  protocol                  = "6"
  source_type               = "NETWORK_SECURITY_GROUP"
  source                    = oci_core_network_security_group.app.id

  tcp_options {
    destination_port_range {
      min = 5432
      max = 5432
    }
  }
}

# Cache: Redis only from the app NSG.
resource "oci_core_network_security_group_security_rule" "cache_ingress_app" {
  network_security_group_id = oci_core_network_security_group.cache.id
  description               = "Redis from the app only"
  direction                 = "INGRESS"
  protocol                  = "6"
  source_type               = "NETWORK_SECURITY_GROUP"
  source                    = oci_core_network_security_group.app.id

  tcp_options {
    destination_port_range {
      min = 6379
      max = 6379
    }
  }
}
