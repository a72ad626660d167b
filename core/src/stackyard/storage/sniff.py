"""The media type of a file, from its first bytes: the type a client declares is never
trusted, and a Bucket's allowedContentTypes are checked against what `detect` says.

Binary formats are recognised by their magic numbers with `filetype` (pure Python, no
libmagic, registered IANA names: image/bmp, application/gzip, application/zip for a plain
zip, application/x-executable for ELF, application/x-msdownload for a PE/MZ executable).
Text is recognised here, for UTF-8 (and ASCII) only:

- application/json: an object or an array that parses (a head cut at SNIFF_BYTES only has
  to be a valid beginning of one);
- image/svg+xml: XML whose root element is `svg` (found with a regular expression over the
  prolog: the XML is never parsed, so no entity expansion);
- application/xml: other XML that starts with an XML declaration;
- text/csv: the same number (2 or more) of `,` `;` or `|` separated fields on every complete
  line (2 lines at least), or any text in a file named `*.csv`; text/tab-separated-values
  for tabs (or `*.tsv`);
- text/plain: any other UTF-8 text without control characters (tabs and line breaks apart).

Anything else, and an empty file, is application/octet-stream.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Iterable

import filetype

SNIFF_BYTES = 8192
"""Bytes `detect` looks at (filetype's own window; enough for the office formats' zip
entries, an SVG's prolog and a few CSV lines)."""

OCTET_STREAM = "application/octet-stream"

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_XML_PROLOG = re.compile(
    r"""\A(?:\s+|<\?xml[^>]*\?>|<!--.*?-->|<!DOCTYPE(?:[^>\[]|\[.*?\])*>|<\?[^>]*\?>)*""",
    re.DOTALL | re.IGNORECASE,
)
_ROOT = re.compile(r"<(?:[A-Za-z_][\w.-]*:)?([A-Za-z_][\w.-]*)[\s/>]")
_CSV_DELIMITERS = (",", ";", "\t", "|")
# How far from the end of a cut head a JSON parse error may be and still be the cut.
_JSON_CUT_SLACK = 8


def detect(head: bytes, filename: str | None = None) -> str:
    """The media type of a file whose first bytes (up to SNIFF_BYTES; all of them for a
    smaller file) are `head`. `filename` is only a hint between text types (`*.csv`)."""
    head = head[:SNIFF_BYTES]
    if not head:
        return OCTET_STREAM
    kind = filetype.guess_mime(head)
    if kind and kind != OCTET_STREAM:
        return str(kind)
    cut = len(head) >= SNIFF_BYTES
    text = _utf8_text(head, cut=cut)
    if text is None:
        return OCTET_STREAM
    return _text_type(text, cut=cut, filename=filename)


def allowed(media_type: str, ranges: Iterable[str]) -> bool:
    """Whether `media_type` is in one of the media ranges (`*/*`, `image/*`,
    `application/pdf`); parameters (`; charset=...`) and case are ignored."""
    kind = media_type.split(";", 1)[0].strip().lower()
    family = kind.split("/", 1)[0]
    for wanted in ranges:
        wanted = wanted.split(";", 1)[0].strip().lower()
        if wanted in ("*/*", kind) or wanted == f"{family}/*":
            return True
    return False


def _utf8_text(head: bytes, *, cut: bool) -> str | None:
    """The head as text, or None when it is not UTF-8 text. A multi-byte character cut by
    the end of the window is tolerated (not at the end of a whole file)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        text = decoder.decode(head.removeprefix(codecs.BOM_UTF8), final=not cut)
    except UnicodeDecodeError:
        return None
    if not text or _CONTROL.search(text):
        return None
    return text


def _text_type(text: str, *, cut: bool, filename: str | None) -> str:
    stripped = text.lstrip()
    if stripped[:1] in ("{", "[") and _json(stripped, cut=cut):
        return "application/json"
    if stripped.startswith("<"):
        root = _xml_root(stripped)
        if root == "svg":
            return "image/svg+xml"
        if root is not None and stripped[:5].lower() == "<?xml":
            return "application/xml"
    suffix = (filename or "").rsplit(".", 1)[-1].lower() if filename and "." in filename else ""
    if suffix == "csv":
        return "text/csv"
    if suffix == "tsv":
        return "text/tab-separated-values"
    delimiter = _csv_delimiter(text, cut=cut)
    if delimiter == "\t":
        return "text/tab-separated-values"
    if delimiter is not None:
        return "text/csv"
    return "text/plain"


def _json(text: str, *, cut: bool) -> bool:
    try:
        json.loads(text)
    except json.JSONDecodeError as error:
        if not cut:
            return False
        # A cut document fails at its end (or inside its last, unterminated string).
        end = len(text.rstrip())
        return error.pos >= end - _JSON_CUT_SLACK or error.msg.startswith("Unterminated string")
    except RecursionError:
        return False
    return True


def _xml_root(text: str) -> str | None:
    prolog = _XML_PROLOG.match(text)
    rest = text[prolog.end() if prolog else 0 :]
    root = _ROOT.match(rest)
    return root.group(1) if root else None


def _csv_delimiter(text: str, *, cut: bool) -> str | None:
    if cut:
        text = text[: text.rfind("\n") + 1]
    for delimiter in _CSV_DELIMITERS:
        if delimiter not in text:
            continue
        try:
            rows = [row for row in csv.reader(io.StringIO(text), delimiter=delimiter, strict=True) if row]
        except csv.Error:
            continue
        widths = {len(row) for row in rows}
        if len(rows) >= 2 and len(widths) == 1 and widths.pop() >= 2:
            return delimiter
    return None
