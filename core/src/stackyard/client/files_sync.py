"""`Stackyard.files`: files in the Stack's Buckets — streamed uploads (through the api,
or straight to the storage), listing, signed URLs with image transforms, streamed downloads.
What each call sends is in `file_calls`.

Calls act for the user of the client's token; with `owner=` they send the admin API key
instead and act for that owner (AdminKeyMissing when the client has none)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, BinaryIO

import httpx

from stackyard.storage.contract import DirectUploadView, FileList, FileView, SignedUrlView

from . import file_calls
from .errors import ApiUnreachable, StackyardError
from .file_calls import Destination, Progress, Source

if TYPE_CHECKING:
    from .sync_client import Stackyard


class Files:
    def __init__(self, client: Stackyard, key: str | None) -> None:
        self._client = client
        self._key = key

    def __repr__(self) -> str:
        return "Files()"

    def upload(
        self,
        source: Source,
        *,
        name: str | None = None,
        bucket: str | None = None,
        metadata: Mapping[str, str] | None = None,
        owner: str | None = None,
        progress: Progress | None = None,
    ) -> FileView:
        """Upload `source` (a path, bytes or an open binary file) through the api, streamed:
        `POST /v1/files?name=…` with the raw bytes. The name defaults to the file's. The api
        detects the type from the bytes. Not retried (the body is read once)."""
        chunks = file_calls.FileChunks(source, progress)
        params = file_calls.upload_params(file_calls.source_name(source, name), bucket, owner, metadata)
        headers = file_calls.headers_for(self._key, owner) | {"Content-Type": "application/octet-stream"}
        if chunks.total is not None:
            headers["Content-Length"] = str(chunks.total)
        request = self._client.http.build_request(
            "POST", file_calls.FILES, params=params, headers=headers, content=chunks
        )
        response = self._send(request)
        try:
            response.read()
        finally:
            response.close()
        return file_calls.uploaded().read(response)

    def start_upload(
        self,
        name: str,
        size: int,
        *,
        content_type: str | None = None,
        bucket: str | None = None,
        metadata: Mapping[str, str] | None = None,
        owner: str | None = None,
    ) -> DirectUploadView:
        """Start a direct upload: where to send the bytes (an S3 presigned POST, or the
        api's signed PUT for a volume Bucket). Then `complete`."""
        call = file_calls.start_upload(self._key, name, content_type, size, metadata, bucket, owner)
        return self._client.send(call)

    def complete(self, file_id: str, *, bucket: str | None = None, owner: str | None = None) -> FileView:
        """Finish a direct upload: the api checks the stored bytes and makes the file available."""
        return self._client.send(file_calls.complete_upload(self._key, file_id, bucket, owner))

    def upload_direct(
        self,
        source: Source,
        *,
        name: str | None = None,
        content_type: str | None = None,
        bucket: str | None = None,
        metadata: Mapping[str, str] | None = None,
        owner: str | None = None,
        progress: Progress | None = None,
    ) -> FileView:
        """Upload `source` straight to the storage (the api sees none of its bytes):
        start_upload, send, complete. Its size must be known."""
        chunks = file_calls.FileChunks(source, progress)
        if chunks.total is None:
            raise ValueError("a direct upload needs the size of its source: give a path, bytes or a regular file")
        direct = self.start_upload(
            file_calls.source_name(source, name),
            chunks.total,
            content_type=content_type,
            bucket=bucket,
            metadata=metadata,
            owner=owner,
        )
        if direct.method == "PUT":
            headers = direct.headers | {"Content-Length": str(chunks.total)}
            request = httpx.Request("PUT", direct.url, headers=headers, content=chunks)
            response = self._send(request, external=True)
        else:
            handle = chunks.opened()
            try:
                files = {"file": (direct.file.name, handle, direct.fields.get("Content-Type"))}
                request = httpx.Request("POST", direct.url, data=direct.fields, files=files)
                response = self._send(request, external=True)
            finally:
                if handle is not source:
                    handle.close()
        try:
            response.read()
        finally:
            response.close()
        if not response.is_success:
            raise StackyardError.from_response(response)
        return self.complete(direct.file.id, bucket=bucket, owner=owner)

    def get(self, file_id: str, *, bucket: str | None = None, owner: str | None = None) -> FileView:
        return self._client.send(file_calls.get_file(self._key, file_id, bucket, owner))

    def list(
        self,
        *,
        bucket: str | None = None,
        owner: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> FileList:
        """One page of files, newest first; `next_cursor` asks for the next."""
        return self._client.send(file_calls.list_files(self._key, bucket, owner, limit, cursor))

    def iterate(
        self, *, bucket: str | None = None, owner: str | None = None, page_size: int = 100
    ) -> Iterator[FileView]:
        """Every file, page after page."""
        cursor: str | None = None
        while True:
            page = self.list(bucket=bucket, owner=owner, limit=page_size, cursor=cursor)
            yield from page.items
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def delete(self, file_id: str, *, bucket: str | None = None, owner: str | None = None) -> None:
        self._client.send(file_calls.delete_file(self._key, file_id, bucket, owner))

    def url(
        self,
        file_id: str,
        *,
        expires_in: int | None = None,
        width: int | None = None,
        height: int | None = None,
        fit: str | None = None,
        gravity: str | None = None,
        crop: tuple[int, int, int, int] | None = None,
        format: str | None = None,
        quality: int | None = None,
        preset: str | None = None,
        download: bool = False,
        bucket: str | None = None,
        owner: str | None = None,
    ) -> SignedUrlView:
        """A signed download URL anyone may use until it expires; transform parameters ask
        for an image variant (width, height, fit, gravity, crop, format, quality, or a
        preset). `gravity` anchors the crop of fit cover (north, southeast...); `crop` is the
        region (x, y, width, height) of the original cut before the fit."""
        call = file_calls.signed_url(
            self._key,
            file_id,
            bucket=bucket,
            owner=owner,
            expires_in=expires_in,
            width=width,
            height=height,
            fit=fit,
            format=format,
            quality=quality,
            preset=preset,
            download=download,
            gravity=gravity,
            crop=crop,
        )
        return self._client.send(call)

    def download(
        self,
        file_id: str,
        destination: str | os.PathLike[str] | BinaryIO,
        *,
        bucket: str | None = None,
        owner: str | None = None,
        progress: Progress | None = None,
        **transform: int | str | tuple[int, int, int, int] | None,
    ) -> int:
        """Stream the file (or the variant of `transform`: width, height, fit, gravity, crop,
        format, quality, preset) to `destination`, a path (written whole or not at all) or an open
        binary file; the bytes written."""
        signed = self.url(file_id, bucket=bucket, owner=owner, **transform)  # type: ignore[arg-type]
        return self.download_url(signed.url, destination, progress=progress)

    def download_url(
        self, url: str, destination: str | os.PathLike[str] | BinaryIO, *, progress: Progress | None = None
    ) -> int:
        """Stream a signed URL of this api to `destination`; the bytes written."""
        request = self._client.http.build_request("GET", file_calls.content_path(url))
        response = self._send(request)
        target = Destination(destination, progress)
        try:
            if not response.is_success:
                response.read()
                raise StackyardError.from_response(response)
            target.start(file_calls.content_length(response.headers))
            for chunk in response.iter_bytes(file_calls.CHUNK):
                target.write(chunk)
            target.finish()
        except BaseException:
            target.abort()
            raise
        finally:
            response.close()
        return target.received

    def read(self, file_id: str, *, bucket: str | None = None, owner: str | None = None) -> bytes:
        """The file's bytes, in memory (small files)."""
        signed = self.url(file_id, bucket=bucket, owner=owner)
        response = self._send(self._client.http.build_request("GET", file_calls.content_path(signed.url)))
        try:
            body = response.read()
        finally:
            response.close()
        if not response.is_success:
            raise StackyardError.from_response(response)
        return body

    def _send(self, request: httpx.Request, external: bool = False) -> httpx.Response:
        """Send with the body streamed and the answer not yet read; ApiUnreachable when the
        api (or, `external`, the storage) cannot be reached."""
        try:
            return self._client.http.send(request, stream=True)
        except httpx.TransportError as exc:
            where = str(request.url) if external else self._client.base_url
            raise ApiUnreachable(where, str(exc) or type(exc).__name__, maybe_applied=True) from exc
