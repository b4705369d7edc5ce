"""Settings, constants and the response envelope."""
