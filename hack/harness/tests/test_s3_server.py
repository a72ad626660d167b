"""The harness's MinIO: it answers S3 with its own root keys and refuses others."""

from __future__ import annotations

import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from stackyard_harness.s3 import S3Server


def test_buckets_are_fresh_and_keep_objects(s3_server: S3Server) -> None:
    first, second = s3_server.create_bucket("a"), s3_server.create_bucket("a")
    assert first != second
    client = s3_server.client()
    client.put_object(Bucket=first, Key="k", Body=b"bytes")
    assert client.get_object(Bucket=first, Key="k")["Body"].read() == b"bytes"
    assert client.list_objects_v2(Bucket=second).get("KeyCount") == 0


def test_wrong_keys_are_refused(s3_server: S3Server) -> None:
    client = botocore.session.get_session().create_client(
        "s3",
        region_name=s3_server.region,
        endpoint_url=s3_server.endpoint,
        aws_access_key_id=s3_server.access_key,
        aws_secret_access_key="not-the-secret",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    with pytest.raises(ClientError) as refused:
        client.list_buckets()
    assert refused.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
