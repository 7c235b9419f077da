"""Label Studio XML templates, one per review kind (package data, rendered by the sync)."""
