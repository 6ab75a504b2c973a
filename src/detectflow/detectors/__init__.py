"""Detectors: the Detector protocol, ONNX implementations, postprocessors and annotation."""

from detectflow.detectors.base import Box, Detection, Detector, ModelInfo
from detectflow.detectors.registry import ModelNotFoundError, load_detector, load_embedder

__all__ = ["Box", "Detection", "Detector", "ModelInfo", "ModelNotFoundError", "load_detector", "load_embedder"]
