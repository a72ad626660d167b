"""The peer of bench/storage.py's upload: boto3's upload_fileobj (its default TransferConfig:
multipart above 8 MiB, 8 MiB parts, 10 threads) of a file to an S3 server, in .venv-bench.

    boto3_upload.py <endpoint> <region> <bucket> <key> <path>

The keys come from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), never argv.
The client is made and the connection opened (HeadBucket) before the clock starts; the clock
covers upload_fileobj alone. Prints one JSON line: seconds, bytes; then deletes the object.
"""

from __future__ import annotations

import json
import os
import sys
import time

import boto3
from botocore.config import Config


def main() -> int:
    endpoint, region, bucket, key, path = sys.argv[1:6]
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
    )
    client.head_bucket(Bucket=bucket)
    size = os.path.getsize(path)
    with open(path, "rb") as source:
        t0 = time.perf_counter()
        client.upload_fileobj(source, bucket, key)
        seconds = time.perf_counter() - t0
    stored = client.head_object(Bucket=bucket, Key=key)["ContentLength"]
    client.delete_object(Bucket=bucket, Key=key)
    if stored != size:
        print(f"stored {stored} bytes, sent {size}", file=sys.stderr)
        return 1
    print(json.dumps({"seconds": seconds, "bytes": size, "boto3": boto3.__version__}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
