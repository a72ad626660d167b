"""Request bodies read as they arrive, for POST /v1/files: a multipart/form-data form parsed
incrementally (python-multipart's push parser, fed from `request.stream()`), whose file part
reaches the storage as an async iterator of chunks. Neither the form nor the file is ever
held whole, in memory or on disk (Starlette's own form parsing spools files to disk, so the
route declares no UploadFile or Form parameter).

The form's text fields come before the file part (as in an S3 POST policy form): they are
read first, then the file's bytes are handed on. A field after the file is refused (400),
because the file is then already stored with the fields seen before it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from stackyard.problems import Problem

MAX_FIELDS = 32
"""Text parts a form may have before its file."""
MAX_FIELD_BYTES = 4096
"""Longest text field value."""
FORM_OVERHEAD = MAX_FIELDS * (MAX_FIELD_BYTES + 512) + 16 * 1024
"""Bytes a form may add to its file (boundaries, part headers, text fields): the declared
Content-Length of a multipart upload may exceed the Bucket's largest file by this much."""


class MalformedUpload(Problem):
    """The body is not a multipart form with one file, or its fields break a limit."""

    status, slug, title = 400, "malformed-upload", "Malformed upload"


@dataclass
class _Part:
    headers: dict[str, str] = field(default_factory=dict)
    name: str = ""
    filename: str | None = None
    content_type: str | None = None
    value: bytearray = field(default_factory=bytearray)


def multipart_boundary(content_type: str) -> bytes | None:
    """The boundary of a multipart/form-data Content-Type, or None for any other type."""
    media, options = parse_options_header(content_type)
    if media.lower() != b"multipart/form-data":
        return None
    boundary = options.get(b"boundary")
    if not boundary:
        raise MalformedUpload("a multipart/form-data body needs a boundary in its Content-Type")
    return boundary


def _filename(options: dict[bytes, bytes]) -> str | None:
    """filename*=UTF-8''… (RFC 5987) before filename=…."""
    extended = options.get(b"filename*")
    if extended:
        charset, _, rest = extended.decode("latin-1").partition("'")
        _, _, encoded = rest.partition("'")
        try:
            return unquote(encoded, encoding=charset or "utf-8", errors="strict")
        except (LookupError, UnicodeDecodeError):
            pass
    plain = options.get(b"filename")
    if plain is None:
        return None
    try:
        return plain.decode("utf-8")
    except UnicodeDecodeError:
        return plain.decode("latin-1")


class FormUpload:
    """One multipart/form-data body, read from `stream` as it arrives.

    `await start()` reads up to the file part: `fields` (text fields in order), `filename`,
    `content_type` (as the client declared them). Then `chunks()` yields the file's bytes,
    and, once the file part ends, reads the rest of the body (refusing any further field)."""

    def __init__(self, stream: AsyncIterator[bytes], boundary: bytes) -> None:
        self._stream = stream
        self._events: deque[tuple[str, Any]] = deque()
        self._part = _Part()
        self._headers: dict[str, str] = {}
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._ended = False
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.content_type: str | None = None
        self.field_name: str | None = None
        callbacks: Any = {
            "on_part_begin": self._begin,
            "on_part_data": self._data,
            "on_part_end": lambda: self._events.append(("end", None)),
            "on_header_field": lambda d, s, e: self._header_field.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self._header_value.extend(d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": lambda: self._events.append(("headers", self._headers)),
        }
        self._parser = MultipartParser(boundary, callbacks)

    def _begin(self) -> None:
        self._headers = {}
        self._events.append(("begin", None))

    def _data(self, data: bytes, start: int, end: int) -> None:
        if end > start:
            self._events.append(("data", bytes(data[start:end])))

    def _header_end(self) -> None:
        name = self._header_field.decode("latin-1").strip().lower()
        self._headers[name] = self._header_value.decode("latin-1").strip()
        self._header_field.clear()
        self._header_value.clear()

    async def _next(self) -> tuple[str, Any] | None:
        while not self._events:
            if self._ended:
                return None
            chunk = await anext(self._stream, None)
            try:
                if chunk is None:
                    self._ended = True
                    self._parser.finalize()
                elif chunk:
                    self._parser.write(chunk)
            except MultipartParseError as exc:
                raise MalformedUpload(f"the multipart body cannot be parsed: {exc}") from exc
        return self._events.popleft()

    def _describe_part(self, headers: dict[str, str]) -> None:
        self._part = _Part(headers=headers)
        disposition, options = parse_options_header(self._part.headers.get("content-disposition", ""))
        if disposition.lower() != b"form-data" or b"name" not in options:
            raise MalformedUpload("each part of the form needs Content-Disposition: form-data; name=…")
        self._part.name = options[b"name"].decode("utf-8", "replace")
        self._part.filename = _filename(options)
        self._part.content_type = self._part.headers.get("content-type")

    async def start(self) -> None:
        """Read the text fields up to the file part (the first part with a filename)."""
        while (event := await self._next()) is not None:
            kind, data = event
            if kind == "headers":
                self._describe_part(data)
                if self._part.filename is not None:
                    self.filename = self._part.filename
                    self.content_type = self._part.content_type
                    self.field_name = self._part.name
                    return
            elif kind == "data":
                if len(self._part.value) + len(data) > MAX_FIELD_BYTES:
                    raise MalformedUpload(f"form field {self._part.name!r} is over {MAX_FIELD_BYTES} bytes")
                self._part.value.extend(data)
            elif kind == "end":
                if len(self.fields) >= MAX_FIELDS:
                    raise MalformedUpload(f"a form may have at most {MAX_FIELDS} fields before its file")
                try:
                    self.fields[self._part.name] = self._part.value.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise MalformedUpload(f"form field {self._part.name!r} is not UTF-8 text") from exc
        raise MalformedUpload("the form has no file part (a part with a filename, e.g. -F file=@photo.jpg)")

    async def chunks(self) -> AsyncIterator[bytes]:
        """The file part's bytes as they arrive; then the rest of the body is read, and a
        part after the file is refused."""
        while (event := await self._next()) is not None:
            kind, data = event
            if kind == "data":
                yield data
            elif kind == "end":
                break
        else:
            raise MalformedUpload("the body ended inside the file part")
        while (event := await self._next()) is not None:
            if event[0] == "begin":
                raise MalformedUpload("fields go before the file in the form; none may follow it")
