# Credentials come from the OCI config file (~/.oci/config) profile named below.
provider "oci" {
  region              = var.region
  config_file_profile = var.config_profile
}
