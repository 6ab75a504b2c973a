"""Detectors: the Detector protocol, ONNX implementations, postprocessors and annotation."""

from detectflow.detectors.base import Box, Detection, Detector, ModelInfo

__all__ = ["Box", "Detection", "Detector", "ModelInfo"]
