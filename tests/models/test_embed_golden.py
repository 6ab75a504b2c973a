"""Golden face recognition on face_recognition's test photos: RetinaFace -> align -> embed -> distances."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from detectflow.detectors.base import Detector
from detectflow.detectors.onnx_embed import OnnxFaceEmbedder, embedding_distances
from tests.support.media import FACE_PHOTOS, face_photo

#: The seed's thresholds: a distance at most MATCH is the same person; above UNCERTAIN, someone else.
MATCH = 0.5
UNCERTAIN = 0.6


@pytest.fixture(scope="module")
def embeddings(face_detector: Detector, embedder: OnnxFaceEmbedder) -> dict[str, np.ndarray]:
    out = {}
    for name in FACE_PHOTOS:
        img = face_photo(name)
        faces = face_detector.detect(img)
        assert len(faces) == 1, f"{name}: {len(faces)} faces"
        out[name] = embedder.embed_faces(img, faces)[0]
    return out


def test_same_person_within_match_threshold_and_different_people_beyond_uncertain(
    embeddings: dict[str, np.ndarray],
) -> None:
    # Given one embedding per photo (five of Obama plus an RGBA copy of one, one of Biden)
    names = list(embeddings)
    d = embedding_distances(np.stack([embeddings[n] for n in names]), np.stack([embeddings[n] for n in names]))
    same, different = [], []
    print("\ndistances (dlib-resnet-v1 on RetinaFace-aligned chips):")
    for (i, a), (j, b) in itertools.combinations(enumerate(names), 2):
        pair = (a, b, float(d[i, j]))
        (same if FACE_PHOTOS[a] == FACE_PHOTOS[b] else different).append(pair)
        print(f"  {a:>20} {b:<20} {d[i, j]:.3f} {'same' if FACE_PHOTOS[a] == FACE_PHOTOS[b] else 'different'}")
    # Then every same-person pair is a confident match and every other pair is unknown
    assert max(p[2] for p in same) <= MATCH, same
    assert min(p[2] for p in different) > UNCERTAIN, different
    # The RGBA PNG is obama2 re-encoded: nearly the same vector
    assert d[names.index("32bit"), names.index("obama2")] < 0.1


def test_embed_faces_embeds_every_face_of_an_image_in_one_batch(
    face_detector: Detector, embedder: OnnxFaceEmbedder, embeddings: dict[str, np.ndarray]
) -> None:
    # Given a photo with two faces side by side (Obama and Biden pasted onto one canvas)
    a, b = face_photo("obama"), face_photo("biden")
    b = b[: a.shape[0]] if b.shape[0] >= a.shape[0] else np.pad(b, ((0, a.shape[0] - b.shape[0]), (0, 0), (0, 0)))
    canvas = np.concatenate([a, b], axis=1)
    faces = face_detector.detect(canvas)
    assert len(faces) == 2
    # When both are embedded at once
    vectors = embedder.embed_faces(canvas, sorted(faces, key=lambda f: f.box.x))
    # Then each is close to its person's single-photo embedding and far from the other's (the
    # 1880 px canvas is shrunk to 1024 px before detection, so the landmarks move a little:
    # measured 0.15 and 0.11, half the match threshold at most)
    d = embedding_distances(vectors, np.stack([embeddings["obama"], embeddings["biden"]]))
    print(f"\ncanvas vs single photo: obama {d[0, 0]:.3f}, biden {d[1, 1]:.3f}")
    assert d[0, 0] < MATCH / 2 and d[1, 1] < MATCH / 2
    assert d[0, 1] > UNCERTAIN and d[1, 0] > UNCERTAIN


def test_batched_embedder_shares_runs_across_threads_and_gives_each_its_own_vectors(
    model_settings, face_detector: Detector, embeddings: dict[str, np.ndarray]
) -> None:
    # Given an embedder loaded with dynamic batching (max_batch 8, a long delay so concurrent calls meet)
    import threading

    from detectflow.detectors.registry import load_embedder

    batched = load_embedder(model_settings.model_copy(update={"worker_max_batch": 8, "worker_max_batch_delay_ms": 200}))
    names = [n for n in FACE_PHOTOS if n in embeddings][:4]
    images = {n: face_photo(n) for n in names}
    faces = {n: face_detector.detect(images[n]) for n in names}
    results: dict[str, np.ndarray] = {}
    gate = threading.Barrier(len(names))

    def job(name: str) -> None:
        gate.wait()
        results[name] = batched.embed_faces(images[name], faces[name])[0]

    # When one thread per photo embeds at once
    threads = [threading.Thread(target=job, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    batched.run_one.close()
    # Then their chips ran together, and each got the vector it gets alone
    assert max(batched.run_one.batch_sizes) > 1, batched.run_one.batch_sizes
    for n in names:
        np.testing.assert_allclose(results[n], embeddings[n], atol=1e-4)
