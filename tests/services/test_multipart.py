"""multipart/related reading (every chunking of a real message) and writing."""
from __future__ import annotations

import pytest

from viewer.services.pacs.multipart import MultipartError, MultipartReader, boundary_of, encode_multipart

PARTS = [b"first \r\n-- not a boundary", b"", b"\r\n--b0undar\r\n" + bytes(range(256)) * 3]


def read_all(body: bytes, content_type: str, chunk: int, max_part: int = 10_000) -> list[bytes]:
    reader = MultipartReader(content_type, max_part)
    found: list[bytes] = []
    for start in range(0, len(body), chunk):
        found += reader.feed(body[start:start + chunk])
    return found + reader.finish()


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 13, 64, 10_000])
def test_every_chunking_gives_the_same_parts(chunk: int) -> None:
    body, content_type = encode_multipart(PARTS)
    assert read_all(body, content_type, chunk) == PARTS


def test_preamble_headerless_parts_padding_quoted_boundary_and_epilogue() -> None:
    body = (b"preamble to ignore\r\n--b0undary  \r\n\r\nno headers\r\n--b0undary\r\nContent-Type: application/dicom"
            b"\r\nContent-Location: x\r\n\r\nwith headers\r\n--b0undary--\r\nepilogue --b0undary\r\n")
    content_type = 'multipart/related; type="application/dicom"; boundary="b0undary"'
    assert read_all(body, content_type, 4) == [b"no headers", b"with headers"]
    assert boundary_of(content_type) == "b0undary"


def test_parts_arrive_as_soon_as_their_delimiter_does() -> None:
    body, content_type = encode_multipart([b"a" * 100, b"b" * 100])
    reader = MultipartReader(content_type, 1000)
    cut = body.index(b"b" * 100) + 10
    assert reader.feed(body[:cut]) == [b"a" * 100]
    assert reader.feed(body[cut:]) == [b"b" * 100]
    assert reader.finish() == []


def test_a_cut_message_an_oversized_part_and_an_empty_one_are_refused() -> None:
    body, content_type = encode_multipart([b"x" * 500, b"y" * 500])
    with pytest.raises(MultipartError, match="ended in the middle of part 2"):
        read_all(body[: body.index(b"y" * 500) + 499], content_type, 100)
    with pytest.raises(MultipartError, match="ended in the middle of part 2"):  # no delimiter after it: unsure
        read_all(body[: body.rindex(b"\r\n--")], content_type, 100)
    with pytest.raises(MultipartError, match="ended after part 2, without its closing delimiter"):
        read_all(body[: body.rindex(b"--")], content_type, 100)
    with pytest.raises(MultipartError, match="part 1 is larger than the 499 bytes allowed"):
        read_all(body, content_type, 100, max_part=499)
    with pytest.raises(MultipartError, match="larger than"):  # refused while streaming, not after buffering it all
        reader = MultipartReader(content_type, 1000)
        for _ in range(100):
            reader.feed(b"--" + content_type.split("boundary=")[1].encode() + b"\r\n\r\n" + b"z" * 600)
    with pytest.raises(MultipartError, match="holds no part"):
        read_all(b"just text, no boundary", content_type, 5)
    with pytest.raises(MultipartError, match="boundary"):
        MultipartReader("multipart/related; type=application/dicom", 10)


def test_an_unwrapped_single_instance_is_one_part() -> None:
    assert read_all(b"DICM" * 10, "application/dicom", 7) == [b"DICM" * 10]
    with pytest.raises(MultipartError, match="larger than"):
        read_all(b"DICM" * 10, "application/dicom", 7, max_part=39)
