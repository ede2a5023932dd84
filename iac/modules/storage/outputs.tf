output "bucket_name" {
  description = "Name of the bucket."
  value       = oci_objectstorage_bucket.this.name
}

output "namespace" {
  description = "Object Storage namespace."
  value       = oci_objectstorage_bucket.this.namespace
}
