"""Configuration: YAML per environment (local.yaml, cluster.yaml) and the one loader, `conf.settings`."""
