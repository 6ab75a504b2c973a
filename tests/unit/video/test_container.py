"""Unit tests of video container sniffing (pure: leading bytes in, container name out)."""

from __future__ import annotations

import pytest

from detectflow.video.container import sniff_container


@pytest.mark.parametrize(
    "head, container",
    [
        (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00", "mp4"),
        (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00", "mp4"),
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00", "mov"),
        (b"\x00\x00\x00\x08wide\x00\x00\x00\x00mdat", "mov"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm\x42\x87", "webm"),
        (b"\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01\x42\x82\x88matroska\x42\x87", "mkv"),
        (b"RIFF\x00\x10\x00\x00AVI LIST", "avi"),
    ],
)
def test_sniff_container_names_each_container_by_its_magic_bytes(head, container):
    assert sniff_container(head) == container


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"\xff\xd8\xff\xe0\x00\x10JFIF",  # JPEG
        b"RIFF\x00\x10\x00\x00WEBPVP8 ",  # WebP image, RIFF too
        b"RIFF\x00\x10\x00\x00WAVEfmt ",  # audio
        b"\x1a\x45\xdf\xa3\x80",  # EBML without a video DocType
        b"ID3\x04\x00\x00\x00\x00\x00\x00",  # MP3
        b"\x00\x00\x00\x00wide",  # an atom of size 0
    ],
)
def test_sniff_container_refuses_what_is_no_video_container(head):
    assert sniff_container(head) is None


def test_sniff_container_reads_a_doctype_written_with_long_sizes():
    from tests.support.videos import audio_only_mkv

    assert sniff_container(audio_only_mkv()) == "mkv"
