"""File storage: Buckets on an S3-compatible server or a volume, streamed and direct
uploads, signed URLs, image variants, malware scans and retention (docs/storage.md)."""
