"""The storage capability's problems (RFC 9457), one per way an upload or a download can
be refused. Details name sizes and types, never a key, a signature or a credential."""

from __future__ import annotations

from ..problems import BackendUnavailable, Conflict, NotFound, PayloadTooLarge, Problem


class FileNotFound(NotFound):
    slug, title = "file-not-found", "File not found"


class BucketNotFound(NotFound):
    """No Bucket of that name in the Stack's config (or no default one to pick)."""

    slug, title = "bucket-not-found", "Bucket not found"


class FileTooLarge(PayloadTooLarge):
    slug, title = "file-too-large", "File too large"


class ContentTypeRefused(Problem):
    """The bytes are not of a type the Bucket accepts (detected, not declared)."""

    status, slug, title = 415, "content-type-refused", "Content type not accepted"


class QuotaExceeded(Problem):
    status, slug, title = 413, "quota-exceeded", "Storage quota exceeded"


class MetadataInvalid(Problem):
    """User metadata over its limits: more than 16 keys, a key or a value too long or of
    other characters."""

    status, slug, title = 422, "metadata-invalid", "Invalid file metadata"


class CursorInvalid(Problem):
    """A listing cursor this api did not make."""

    status, slug, title = 400, "cursor-invalid", "Invalid cursor"


class SignatureInvalid(Problem):
    """A signed URL was altered, or signed for another file or other parameters."""

    status, slug, title = 403, "signature-invalid", "Invalid signature"


class SignatureExpired(Problem):
    status, slug, title = 403, "signature-expired", "Signed URL expired"


class FileNotAvailable(Conflict):
    """The file exists but cannot be served: still uploading or being scanned (409), or
    quarantined by the malware scan (the `state` extension says which)."""

    slug, title = "file-not-available", "File not available"


class ImageRefused(Problem):
    """A transform that cannot be made: not an image, too many pixels (a decompression bomb),
    dimensions over the Bucket's limit, a format the Bucket does not allow."""

    status, slug, title = 422, "image-refused", "Image transform refused"


class UploadIncomplete(Problem):
    """A direct upload's completion call found no object, or one of another size."""

    status, slug, title = 409, "upload-incomplete", "Upload incomplete"


class StorageUnavailable(BackendUnavailable):
    """The S3 server or the volume did not answer; Retry-After says when to try again."""

    slug, title = "storage-unavailable", "Storage unavailable"
    subject = "the storage"
