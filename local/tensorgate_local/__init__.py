"""The local stack: moto's server as the embedded AWS, an API Gateway emulation, SQS pollers, a CPU worker."""
