# Credentials: calops runs Terraform as the identity it signs its own OCI calls with, given to
# the provider through its environment variables (OCI_TENANCY_OCID, OCI_USER_OCID,
# OCI_FINGERPRINT, OCI_PRIVATE_KEY_PATH; `calops doctor` shows them). Run by hand, the provider
# reads ~/.oci/config of the passwd home (profile DEFAULT, or OCI_CONFIG_FILE_PROFILE).
provider "oci" {
  region = var.region
}

# IAM writes (dynamic group, policies) go to the tenancy's home region.
provider "oci" {
  alias  = "home"
  region = var.home_region
}
