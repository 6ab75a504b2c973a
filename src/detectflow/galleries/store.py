"""GalleryStore: galleries, subjects and faces in Redis (a tenant's keys under KeyLayout), changes bump a version."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

import numpy as np
import redis

from detectflow.galleries.records import (
    EXPORT_FORMAT,
    ExportedFace,
    ExportedSubject,
    Face,
    Gallery,
    GalleryCreate,
    GalleryExport,
    GalleryUpdate,
    Subject,
    SubjectCreate,
)
from detectflow.keys import KeyLayout

__all__ = ["GalleryStore", "new_id", "apply_update"]

# KEYS: gallery hash, subjects hash. ARGV: subject id, subject JSON. -> new version, or -1 without the gallery.
_PUT_SUBJECT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return redis.call('HINCRBY', KEYS[1], 'version', 1)
"""

# KEYS: gallery, subjects, faces, vectors, the subject's face set. ARGV: subject id, then (id, JSON, vector)...
# -> new version; -1 without the gallery, -2 without the subject.
_ADD_FACES = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return -2 end
for i = 2, #ARGV, 3 do
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
  redis.call('HSET', KEYS[4], ARGV[i], ARGV[i + 2])
  redis.call('SADD', KEYS[5], ARGV[i])
end
return redis.call('HINCRBY', KEYS[1], 'version', 1)
"""

# KEYS: gallery, subjects, faces, vectors, the subject's face set. ARGV: subject id. -> new version or -1.
_DELETE_SUBJECT = """
if redis.call('HDEL', KEYS[2], ARGV[1]) == 0 then return -1 end
for _, id in ipairs(redis.call('SMEMBERS', KEYS[5])) do
  redis.call('HDEL', KEYS[3], id)
  redis.call('HDEL', KEYS[4], id)
end
redis.call('DEL', KEYS[5])
return redis.call('HINCRBY', KEYS[1], 'version', 1)
"""

# KEYS: gallery, faces, vectors, the subject's face set. ARGV: face id. -> new version or -1.
_DELETE_FACE = """
if redis.call('SREM', KEYS[4], ARGV[1]) == 0 then return -1 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return redis.call('HINCRBY', KEYS[1], 'version', 1)
"""


def apply_update(gallery: dict, update: GalleryUpdate) -> dict:
    """A gallery's fields (``Gallery.model_dump()``) with an update's given fields; thresholds merged one by one."""
    out = dict(gallery)
    changes = update.model_dump(exclude_none=True)
    thresholds = changes.pop("thresholds", None)
    out.update(changes)
    if thresholds:
        out["thresholds"] = {**gallery["thresholds"], **thresholds}
    return out


def new_id() -> str:
    """A random id for a gallery, subject or face."""
    return uuid.uuid4().hex


def _vector_bytes(vector: Sequence[float] | np.ndarray) -> bytes:
    return np.asarray(vector, "<f4").reshape(-1).tobytes()


class GalleryStore:
    """Synchronous (the worker's client; the API calls it from a thread). Another tenant's gallery is absent."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.keys = KeyLayout(prefix)
        self._put_subject = client.register_script(_PUT_SUBJECT)
        self._add_faces = client.register_script(_ADD_FACES)
        self._delete_subject = client.register_script(_DELETE_SUBJECT)
        self._delete_face = client.register_script(_DELETE_FACE)

    # --- galleries --------------------------------------------------------------------
    def create_gallery(self, tenant: str, spec: GalleryCreate, embedding_model: str, gallery_id: str = "") -> Gallery:
        gallery = Gallery(**spec.model_dump(), id=gallery_id or new_id(), embedding_model=embedding_model)
        record = gallery.model_dump_json(exclude={"version", "subjects", "faces"})
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.keys.gallery(tenant, gallery.id), mapping={"record": record, "version": 0})
        pipe.sadd(self.keys.galleries(tenant), gallery.id)
        pipe.execute()
        return gallery

    def get_gallery(self, tenant: str, gallery_id: str) -> Gallery | None:
        pipe = self.client.pipeline(transaction=False)
        pipe.hmget(self.keys.gallery(tenant, gallery_id), "record", "version")
        pipe.hlen(self.keys.gallery_subjects(tenant, gallery_id))
        pipe.hlen(self.keys.gallery_faces(tenant, gallery_id))
        (record, version), subjects, faces = pipe.execute()
        if record is None:
            return None
        return Gallery.model_validate_json(record).model_copy(
            update={"version": int(version or 0), "subjects": subjects, "faces": faces}
        )

    def list_galleries(self, tenant: str) -> list[Gallery]:
        ids = sorted(m.decode() for m in self.client.smembers(self.keys.galleries(tenant)))
        found = (self.get_gallery(tenant, g) for g in ids)
        return sorted((g for g in found if g is not None), key=lambda g: g.created_at)

    def delete_gallery(self, tenant: str, gallery_id: str) -> bool:
        subjects = self.client.hkeys(self.keys.gallery_subjects(tenant, gallery_id))
        pipe = self.client.pipeline(transaction=True)
        pipe.srem(self.keys.galleries(tenant), gallery_id)
        pipe.delete(*self.keys.gallery_keys(tenant, gallery_id))
        for s in subjects:
            pipe.delete(self.keys.subject_faces(tenant, gallery_id, s.decode()))
        removed, *_ = pipe.execute()
        return bool(removed)

    def update_gallery(self, tenant: str, gallery_id: str, update: GalleryUpdate) -> Gallery | None:
        """Change a gallery's name, thresholds or metadata and bump its version (workers' caches then reload it).

        One optimistic transaction (WATCH): a concurrent change is retried, never lost. None without the gallery.

        Raises
        ------
        pydantic.ValidationError
            When the thresholds, merged with the current ones, are out of order (``uncertain < match``).
        """
        key = self.keys.gallery(tenant, gallery_id)

        def change(pipe) -> bool:
            record = pipe.hget(key, "record")
            if record is None:
                return False
            gallery = Gallery.model_validate(apply_update(Gallery.model_validate_json(record).model_dump(), update))
            pipe.multi()
            pipe.hset(key, "record", gallery.model_dump_json(exclude={"version", "subjects", "faces"}))
            pipe.hincrby(key, "version", 1)
            return True

        found = self.client.transaction(change, key, value_from_callable=True)
        return self.get_gallery(tenant, gallery_id) if found else None

    def dimension(self, tenant: str, gallery_id: str) -> int | None:
        """Floats per embedding of the gallery's faces (one face read); None while it has none."""
        pair = self.client.hrandfield(self.keys.gallery_vectors(tenant, gallery_id), 1, withvalues=True)
        return len(pair[1]) // 4 if pair else None

    def version(self, tenant: str, gallery_id: str) -> int | None:
        """The gallery's version; None when it does not exist."""
        raw = self.client.hget(self.keys.gallery(tenant, gallery_id), "version")
        return None if raw is None else int(raw)

    # --- subjects ---------------------------------------------------------------------
    def _subject_keys(self, tenant: str, gallery_id: str, subject_id: str) -> list[str]:
        k = self.keys
        return [*k.gallery_keys(tenant, gallery_id), k.subject_faces(tenant, gallery_id, subject_id)]

    def create_subject(
        self, tenant: str, gallery_id: str, spec: SubjectCreate, subject_id: str = ""
    ) -> Subject | None:
        """A new subject; None when the gallery does not exist."""
        subject = Subject(**spec.model_dump(), id=subject_id or new_id(), gallery_id=gallery_id)
        keys = [self.keys.gallery(tenant, gallery_id), self.keys.gallery_subjects(tenant, gallery_id)]
        version = self._put_subject(keys=keys, args=[subject.id, subject.model_dump_json(exclude={"faces"})])
        return None if version < 0 else subject

    def get_subject(self, tenant: str, gallery_id: str, subject_id: str) -> Subject | None:
        raw = self.client.hget(self.keys.gallery_subjects(tenant, gallery_id), subject_id)
        if raw is None:
            return None
        faces = self.client.scard(self.keys.subject_faces(tenant, gallery_id, subject_id))
        return Subject.model_validate_json(raw).model_copy(update={"faces": faces})

    def list_subjects(self, tenant: str, gallery_id: str) -> list[Subject]:
        raw = self.client.hgetall(self.keys.gallery_subjects(tenant, gallery_id))
        subjects = [Subject.model_validate_json(v) for v in raw.values()]
        pipe = self.client.pipeline(transaction=False)
        for s in subjects:
            pipe.scard(self.keys.subject_faces(tenant, gallery_id, s.id))
        counts = pipe.execute() if subjects else []
        out = [s.model_copy(update={"faces": n}) for s, n in zip(subjects, counts, strict=True)]
        return sorted(out, key=lambda s: (s.created_at, s.id))

    def delete_subject(self, tenant: str, gallery_id: str, subject_id: str) -> bool:
        return self._delete_subject(keys=self._subject_keys(tenant, gallery_id, subject_id), args=[subject_id]) >= 0

    # --- faces ------------------------------------------------------------------------
    def add_faces(
        self, tenant: str, gallery_id: str, subject_id: str, faces: Sequence[tuple[Face, Sequence[float] | np.ndarray]]
    ) -> int | None:
        """Store faces and their embeddings in one step; the new version, or None without the gallery or subject."""
        args: list[str | bytes] = [subject_id]
        for face, vector in faces:
            args += [face.id, face.model_dump_json(), _vector_bytes(vector)]
        version = self._add_faces(keys=self._subject_keys(tenant, gallery_id, subject_id), args=args)
        return None if version < 0 else int(version)

    def list_faces(self, tenant: str, gallery_id: str, subject_id: str) -> list[Face]:
        ids = sorted(m.decode() for m in self.client.smembers(self.keys.subject_faces(tenant, gallery_id, subject_id)))
        if not ids:
            return []
        raw = self.client.hmget(self.keys.gallery_faces(tenant, gallery_id), ids)
        faces = [Face.model_validate_json(r) for r in raw if r is not None]
        return sorted(faces, key=lambda f: (f.created_at, f.id))

    def delete_face(self, tenant: str, gallery_id: str, subject_id: str, face_id: str) -> bool:
        k = self.keys
        keys = [
            k.gallery(tenant, gallery_id),
            k.gallery_faces(tenant, gallery_id),
            k.gallery_vectors(tenant, gallery_id),
            k.subject_faces(tenant, gallery_id, subject_id),
        ]
        return self._delete_face(keys=keys, args=[face_id]) >= 0

    def snapshot(self, tenant: str, gallery_id: str):
        """One consistent read of a gallery: (version or None, {subject id: name}, [(face id, subject id, vector)])."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hget(self.keys.gallery(tenant, gallery_id), "version")
        pipe.hgetall(self.keys.gallery_subjects(tenant, gallery_id))
        pipe.hgetall(self.keys.gallery_faces(tenant, gallery_id))
        pipe.hgetall(self.keys.gallery_vectors(tenant, gallery_id))
        version, subjects_raw, faces_raw, vectors_raw = pipe.execute()
        if version is None:
            return None, {}, []
        subjects = {k.decode(): json.loads(v)["name"] for k, v in subjects_raw.items()}
        faces = []
        for fid, raw in faces_raw.items():
            vector = vectors_raw.get(fid)
            if vector is not None:
                faces.append((fid.decode(), json.loads(raw)["subject_id"], np.frombuffer(vector, "<f4")))
        return int(version), subjects, faces

    # --- export and import ------------------------------------------------------------
    def export(self, tenant: str, gallery_id: str) -> GalleryExport | None:
        gallery = self.get_gallery(tenant, gallery_id)
        if gallery is None:
            return None
        pipe = self.client.pipeline(transaction=True)
        pipe.hgetall(self.keys.gallery_subjects(tenant, gallery_id))
        pipe.hgetall(self.keys.gallery_faces(tenant, gallery_id))
        pipe.hgetall(self.keys.gallery_vectors(tenant, gallery_id))
        subjects_raw, faces_raw, vectors_raw = pipe.execute()
        by_subject: dict[str, list[ExportedFace]] = {}
        dimension = 128
        for fid, raw in faces_raw.items():
            face = Face.model_validate_json(raw)
            vector = np.frombuffer(vectors_raw.get(fid, b""), "<f4")
            if not len(vector):
                continue
            dimension = len(vector)
            by_subject.setdefault(face.subject_id, []).append(
                ExportedFace(
                    id=face.id, embedding=[float(x) for x in vector], created_at=face.created_at,
                    box=face.box, quality=face.quality, source=face.source,
                )  # fmt: skip
            )
        subjects = sorted((Subject.model_validate_json(v) for v in subjects_raw.values()), key=lambda s: s.created_at)
        return GalleryExport(
            format=EXPORT_FORMAT,
            name=gallery.name,
            thresholds=gallery.thresholds,
            metadata=gallery.metadata,
            embedding_model=gallery.embedding_model,
            dimension=dimension,
            subjects=[
                ExportedSubject(
                    id=s.id, name=s.name, metadata=s.metadata,
                    faces=sorted(by_subject.get(s.id, []), key=lambda f: (f.created_at or s.created_at, f.id)),
                )  # fmt: skip
                for s in subjects
            ],
        )

    def import_gallery(self, tenant: str, data: GalleryExport) -> Gallery:
        """A new gallery holding an export's subjects and faces (their ids kept)."""
        spec = GalleryCreate(name=data.name, thresholds=data.thresholds, metadata=data.metadata)
        gallery = self.create_gallery(tenant, spec, data.embedding_model)
        for s in data.subjects:
            self.create_subject(tenant, gallery.id, SubjectCreate(name=s.name, metadata=s.metadata), subject_id=s.id)
            faces = [
                (
                    Face(
                        id=f.id, subject_id=s.id, box=f.box, quality=f.quality, source=f.source or "import",
                        **({"created_at": f.created_at} if f.created_at else {}),
                    ),  # fmt: skip
                    f.embedding,
                )
                for f in s.faces
            ]
            for start in range(0, len(faces), 500):  # bounded script arguments
                self.add_faces(tenant, gallery.id, s.id, faces[start : start + 500])
        return self.get_gallery(tenant, gallery.id) or gallery
