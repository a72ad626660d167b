"""Content type detection on the bytes: real file headers (made here with Pillow, zipfile,
gzip, or written out from the formats' specs), text kinds, and media ranges."""

from __future__ import annotations

import gzip
import io
import json
import struct
import zipfile

import pytest
from PIL import Image
from stackyard.storage.sniff import SNIFF_BYTES, allowed, detect


def picture(fmt: str, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (16, 16), "red").save(buffer, fmt)
    return buffer.getvalue()


def zip_of(entries: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in entries.items():
            archive.writestr(name, text)
    return buffer.getvalue()


MINIMAL_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)
# An ISO base media file: the `ftyp` box (size, type, major brand, version, compatible brands).
MP4_HEADER = struct.pack(">I4s4sI8s", 24, b"ftyp", b"isom", 512, b"isomiso2") + struct.pack(">I4s", 8, b"free")
# An ELF64 little-endian executable header's identification and type fields.
ELF_HEADER = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + struct.pack("<HHI", 2, 0x3E, 1) + b"\x00" * 40
# A DOS stub (MZ) pointing to a PE header, as every Windows executable starts.
PE_HEADER = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 44 + b"\x80\x00\x00\x00"


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        pytest.param(picture("PNG"), "image/png", id="png"),
        pytest.param(picture("JPEG"), "image/jpeg", id="jpeg"),
        pytest.param(picture("GIF"), "image/gif", id="gif"),
        pytest.param(picture("WEBP"), "image/webp", id="webp"),
        pytest.param(picture("AVIF"), "image/avif", id="avif"),
        pytest.param(picture("BMP"), "image/bmp", id="bmp"),
        pytest.param(picture("TIFF"), "image/tiff", id="tiff"),
        pytest.param(MINIMAL_PDF, "application/pdf", id="pdf"),
        pytest.param(zip_of({"notes.txt": "hello"}), "application/zip", id="zip"),
        pytest.param(
            zip_of({"[Content_Types].xml": "<Types/>", "word/document.xml": "<w/>"}),
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            id="docx",
        ),
        pytest.param(gzip.compress(b"hello " * 100), "application/gzip", id="gzip"),
        pytest.param(MP4_HEADER, "video/mp4", id="mp4"),
        pytest.param(ELF_HEADER, "application/x-executable", id="elf"),
        pytest.param(PE_HEADER, "application/x-msdownload", id="exe"),
    ],
)
def test_binary_formats_are_known_by_their_magic_numbers(head: bytes, expected: str) -> None:
    assert detect(head[:SNIFF_BYTES], None) == expected


def test_declared_name_does_not_change_a_binary_type() -> None:
    assert detect(ELF_HEADER, "holiday.jpg") == "application/x-executable"
    assert detect(picture("PNG"), "report.pdf") == "image/png"
    assert detect(MINIMAL_PDF, "data.csv") == "application/pdf"


def test_unknown_binary_is_octet_stream() -> None:
    assert detect(bytes(range(256)) * 4, "file.txt") == "application/octet-stream"
    assert detect(b"\x00\x01\x02garbage\xff\xfe", None) == "application/octet-stream"
    assert detect(b"", "empty.csv") == "application/octet-stream"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("hello world\nsecond line\n", "text/plain", id="plain"),
        pytest.param("héllo wörld — ünïcode ✓\n", "text/plain", id="plain-utf8"),
        pytest.param('{"name": "stackyard", "tags": ["a", "b"]}', "application/json", id="json-object"),
        pytest.param('  [1, 2, {"a": null}]\n', "application/json", id="json-array"),
        pytest.param('{"name": "unterminated', "text/plain", id="broken-json"),
        pytest.param("42", "text/plain", id="json-scalar-is-plain"),
        pytest.param("name,age,city\nada,36,london\nalan,41,wilmslow\n", "text/csv", id="csv-comma"),
        pytest.param('id;label\n1;"semi; colon"\n2;plain\n', "text/csv", id="csv-semicolon-quoted"),
        pytest.param("a\tb\tc\n1\t2\t3\n", "text/tab-separated-values", id="tsv"),
        pytest.param("name,age\nada\n", "text/plain", id="ragged-is-plain"),
        pytest.param(
            '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect/></svg>', "image/svg+xml", id="svg"
        ),
        pytest.param(
            '\ufeff<?xml version="1.0" encoding="UTF-8"?>\n<!-- drawn by hand -->\n'
            '<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n'
            '<svg xmlns="http://www.w3.org/2000/svg"/>',
            "image/svg+xml",
            id="svg-with-prolog-and-bom",
        ),
        pytest.param('<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"/>', "application/xml", id="xml"),
        pytest.param("<html><body>hi</body></html>", "text/plain", id="html-served-as-plain"),
    ],
)
def test_text_kinds(text: str, expected: str) -> None:
    assert detect(text.encode(), None) == expected


def test_csv_name_makes_any_text_csv_but_not_binary() -> None:
    assert detect(b"just one column\nand another row\n", "export.CSV") == "text/csv"
    assert detect(b"\x00\x01binary", "export.csv") == "application/octet-stream"


def test_latin1_and_control_characters_are_not_text() -> None:
    assert detect("café".encode("latin-1"), None) == "application/octet-stream"
    assert detect(b"text with a \x00 nul", None) == "application/octet-stream"


def test_head_cut_at_the_window_still_detects_large_json_and_csv() -> None:
    rows = [{"id": n, "name": f"item {n}", "tags": ["x", "y"]} for n in range(2000)]
    document = json.dumps(rows).encode()
    assert len(document) > SNIFF_BYTES
    assert detect(document[:SNIFF_BYTES], None) == "application/json"
    table = "".join(f"{n},item {n},{n * 3}\n" for n in range(2000)).encode()
    assert detect(table[:SNIFF_BYTES], None) == "text/csv"


def test_multibyte_character_cut_by_the_window_is_still_text() -> None:
    head = ("a" + "é" * SNIFF_BYTES).encode()[:SNIFF_BYTES]
    assert head.endswith(b"\xc3")  # the first byte of a two-byte character
    assert detect(head, None) == "text/plain"
    assert detect(head[:100] + b"\xc3", None) == "application/octet-stream"  # a whole file ending so


@pytest.mark.parametrize(
    ("media_type", "ranges", "expected"),
    [
        ("image/png", ["image/*"], True),
        ("image/png", ["*/*"], True),
        ("application/pdf", ["application/pdf"], True),
        ("application/pdf", ["image/*", "text/plain"], False),
        ("image/svg+xml", ["image/png", "image/jpeg"], False),
        ("text/csv", ["TEXT/*"], True),
        ("text/plain; charset=utf-8", ["text/plain"], True),
        ("application/octet-stream", [], False),
        ("imagex/png", ["image/*"], False),
    ],
)
def test_allowed_matches_media_ranges(media_type: str, ranges: list[str], expected: bool) -> None:
    assert allowed(media_type, ranges) is expected
