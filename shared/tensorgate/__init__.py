"""Tensorgate's core library: config, models, errors, ports, adapters, services, HTTP helpers."""
