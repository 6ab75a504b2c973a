"""Face embeddings with an ONNX embedder (dlib's ResNet): aligned 150x150 RGB chips in, 128-d vectors out."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from detectflow.detectors.align import DEFAULT_CHIP_PADDING, align_faces
from detectflow.detectors.base import Detection, ModelInfo
from detectflow.models.cards import ModelCard

__all__ = ["OnnxFaceEmbedder", "embedding_distances"]


class OnnxFaceEmbedder:
    """Embedder for a card whose postprocessor is ``embedding``; one session run per batch of chips.

    Parameters
    ----------
    session
        onnxruntime session on the model's ONNX file (input ``[N, 3, H, W]``, output ``[N, D]``).
    card
        The model card: input size and colour, mean/std, alignment settings.
    info
        Reported with each result (provider in use included).
    """

    def __init__(self, session, card: ModelCard, info: ModelInfo) -> None:
        if card.postprocessor != "embedding":
            raise ValueError(f"{card.name}: OnnxFaceEmbedder needs postprocessor 'embedding', not {card.postprocessor!r}")
        if card.input.size is None:
            raise ValueError(f"{card.name}: an embedder card needs input.size (the chip size)")
        self.info = info
        self.card = card
        self.session = session
        self.chip_size = card.input.size[0]
        self._input = card.input.name or session.get_inputs()[0].name
        self._output = card.postprocessor_options.get("output") or session.get_outputs()[0].name
        self.dimension = int(card.postprocessor_options.get("dimension") or session.get_outputs()[0].shape[-1])
        self._padding = float(card.postprocessor_options.get("alignment", {}).get("padding", DEFAULT_CHIP_PADDING))
        pre = card.preprocessing
        self._mean = np.asarray(pre.mean, np.float32)
        self._scale = np.float32(1) / np.asarray(pre.std, np.float32)
        #: Runs one image's chips: :meth:`infer` itself, or a MicroBatcher over it that batches concurrent jobs.
        self.run_one = self.infer
        #: Chips per model run (above 1 when ``run_one`` batches).
        self.max_batch = 1

    def infer(self, x: np.ndarray) -> list[np.ndarray]:
        """The graph's outputs for stacked, normalised chips ``x`` (N, 3, H, W) (the session itself)."""
        return self.session.run([self._output], {self._input: x})

    def embed(self, chips: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Embeddings of aligned chips, the whole batch in one session run (shared with other jobs' with a batcher).

        Parameters
        ----------
        chips
            uint8 chips (N, size, size, 3) in the card's colour order (RGB for dlib), e.g. from
            :func:`detectflow.detectors.align.align_faces`.

        Returns
        -------
        np.ndarray
            Shape (N, D), float32 (D = 128 for dlib); not unit length.
        """
        batch = np.asarray(chips)
        if batch.ndim == 3:
            batch = batch[None]
        h, w = self.card.input.size
        if batch.shape[1:] != (h, w, 3):
            raise ValueError(f"{self.card.name}: expected chips of shape (N, {h}, {w}, 3), got {batch.shape}")
        if not len(batch):
            return np.zeros((0, self.dimension), np.float32)
        x = (batch.astype(np.float32) - self._mean) * self._scale
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        (out,) = self.run_one(x)
        return out.astype(np.float32, copy=False)

    def embed_faces(self, image: np.ndarray, faces: Sequence[Detection]) -> np.ndarray:
        """Align every detected face of ``image`` (BGR uint8) by its landmarks and embed them in one batch.

        Raises
        ------
        ValueError
            When a detection has no landmarks.
        """
        if any(f.landmarks is None for f in faces):
            raise ValueError("every face needs its five landmarks to be aligned")
        points = np.array([f.landmarks for f in faces], np.float64).reshape(-1, 5, 2)
        chips = align_faces(image, points, self.chip_size, self._padding, bgr=True)
        if self.card.input.color == "BGR":
            chips = chips[..., ::-1]
        return self.embed(chips)

    def warmup(self) -> None:
        """One pass on a blank chip."""
        h, w = self.card.input.size
        self.embed(np.zeros((1, h, w, 3), np.uint8))


def embedding_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances between every row of ``a`` (N, D) and every row of ``b`` (M, D): (N, M) float32."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    d2 = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(d2, 0)).astype(np.float32)
