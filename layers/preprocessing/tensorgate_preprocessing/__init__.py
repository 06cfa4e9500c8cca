"""Tensorgate's preprocessing layer: images to input tensors and model outputs to results (DESIGN §3).

Import the light modules anywhere (``spec``, ``errors``, ``geometry``: no numpy, no Pillow); the heavy
ones only where images are processed: ``images`` (decode, crop, resize), ``tensors`` (mean, layout,
batches), ``batching`` (requests to model feeds), ``postprocess`` (tensors, detections, labels).
"""
