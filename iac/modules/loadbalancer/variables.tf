variable "compartment_id" {
  description = "OCID of the compartment."
  type        = string
}

variable "name" {
  description = "Display name of the load balancer."
  type        = string
}

variable "subnet_id" {
  description = "OCID of the public subnet."
  type        = string
}

variable "nsg_id" {
  description = "OCID of the load balancer NSG (80/443 from the internet)."
  type        = string
}

variable "min_bandwidth_mbps" {
  description = "Minimum bandwidth of the flexible shape (10 is the Always Free size)."
  type        = number
  default     = 10
}

variable "max_bandwidth_mbps" {
  description = "Maximum bandwidth of the flexible shape."
  type        = number
  default     = 10
}

variable "certificate_id" {
  description = "OCID of a Certificates-service certificate for the HTTPS listener; null serves plain HTTP on port 80 only."
  type        = string
  default     = null
}

variable "hostname" {
  description = "Public host name (for the URL output); null uses the load balancer's IP address."
  type        = string
  default     = null
}

variable "idle_timeout_seconds" {
  description = "Listener idle timeout. Long enough for WebSocket connections (default 300 s; OCI allows up to 7200)."
  type        = number
  default     = 300
}

variable "backend_port" {
  description = "Port of the service on the backends."
  type        = number
}

variable "health_check_path" {
  description = "HTTP path the backend set's health checker probes (the service's readiness)."
  type        = string
  default     = "/health"
}

variable "backends" {
  description = "One backend per container instance that should receive or finish traffic: key (`<slot>-<replica>`) -> { ip_address, drain }. A draining backend takes no new connections."
  type = map(object({
    ip_address = string
    drain      = bool
  }))
  default = {}
}

variable "freeform_tags" {
  description = "Tags applied to the load balancer."
  type        = map(string)
  default     = {}
}
