output "sender" {
  description = "The approved sender address."
  value       = oci_email_sender.this.email_address
}

output "dkim_cname" {
  description = "The DNS record the sender's domain must publish for DKIM: name and CNAME target."
  value = {
    name  = oci_email_dkim.this.dns_subdomain_name
    value = oci_email_dkim.this.cname_record_value
  }
}
