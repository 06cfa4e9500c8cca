"""Tensorgate's core library: config, models, errors, ports, adapters, services, HTTP helpers."""

import warnings

# A Lambda invocation that records no metric of its own is normal here, not worth a warning per call.
warnings.filterwarnings("ignore", message="No application metrics to publish")
