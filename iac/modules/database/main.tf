# OCI Database with PostgreSQL in the private subnet. The administrator password comes from an
# OCI Vault secret (password_type VAULT_SECRET): no password value is ever in Terraform state.

resource "oci_psql_db_system" "this" {
  compartment_id              = var.compartment_id
  display_name                = var.name
  db_version                  = var.postgres_version
  shape                       = var.shape
  instance_ocpu_count         = var.ocpus
  instance_memory_size_in_gbs = var.memory_gbs
  instance_count              = var.instance_count
  freeform_tags               = var.freeform_tags

  credentials {
    username = var.admin_username

    password_details {
      password_type  = "VAULT_SECRET"
      secret_id      = var.admin_password_secret_id
      secret_version = var.admin_password_secret_version
    }
  }

  network_details {
    subnet_id = var.subnet_id
    nsg_ids   = [var.nsg_id]
  }

  storage_details {
    system_type           = "OCI_OPTIMIZED_STORAGE"
    is_regionally_durable = true
    iops                  = var.storage_iops
  }

  management_policy {
    backup_policy {
      kind           = "DAILY"
      backup_start   = var.backup_start
      retention_days = var.backup_retention_days
    }
  }

  lifecycle {
    prevent_destroy = true
  }
}

# Where and how the service connects: the primary endpoint's FQDN and port, and the CA that
# signs the database's certificate (OCI Database with PostgreSQL accepts TLS connections only;
# the service checks the certificate against this CA, for this FQDN: sslmode verify-full).
data "oci_psql_db_system_connection_detail" "this" {
  db_system_id = oci_psql_db_system.this.id
}
