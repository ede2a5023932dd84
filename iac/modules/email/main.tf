# E-mail through OCI Email Delivery: the sender's email domain (with a DKIM key, whose CNAME
# record the domain's DNS must publish before mail is signed), and the approved sender the
# service's containers (or the `oci-vm` target's VM) submit as. They send with `SubmitRawEmail`
# (the whole MIME message, its calendar invitation included) signed as their resource principal
# (the VM: its instance principal), so no SMTP credential (and no password in any state) exists;
# the access module grants them `use approved-senders` for this address only.

locals {
  domain = lower(split("@", var.sender)[1])
}

resource "oci_email_email_domain" "this" {
  compartment_id = var.compartment_id
  name           = local.domain
  description    = "calops ${var.name}: the service's e-mail"
  freeform_tags  = var.freeform_tags
}

# The selector is stable (a new name would replace the key): `<name>-<region>`.
resource "oci_email_dkim" "this" {
  email_domain_id = oci_email_email_domain.this.id
  name            = "${var.name}-${var.region}"
  description     = "calops ${var.name}"
  freeform_tags   = var.freeform_tags
}

resource "oci_email_sender" "this" {
  compartment_id = var.compartment_id
  email_address  = var.sender
  freeform_tags  = var.freeform_tags

  depends_on = [oci_email_email_domain.this]
}
