"""Small helpers: struct-to-map, structured logging, the Kubernetes access layer."""
