"""Domain errors of the preprocessing layer: plain classes with one readable sentence (no numpy import)."""

from __future__ import annotations

from typing import Any


class PreprocessingError(Exception):
    """An input or a declaration the layer cannot process; the API answers it with a 4xx."""

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class InvalidImage(PreprocessingError):
    """Not an image, a truncated or corrupt file, undecodable base64, or a malformed pixel array."""


class ImageTooLarge(PreprocessingError):
    """More pixels than the configured limit (decompression bombs are refused before decoding)."""


class InvalidBoundingBox(PreprocessingError):
    """A request `bbox` that is malformed, outside [0, 1], or empty."""


class InvalidMeanFile(PreprocessingError):
    """A `mean_file` that is not a numeric `.npy` array broadcastable to the input."""


class MissingTargetSize(PreprocessingError):
    """No `target_size` declared and none can be read from the model's input shape."""


class InvalidModelOutput(PreprocessingError):
    """A model output that does not fit the network's postprocessing (missing tensor, wrong shape)."""


class UnknownOutputTensor(PreprocessingError):
    """A request's `output_tensors` names a tensor no postprocessing of the network lists."""
