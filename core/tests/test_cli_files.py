"""`stackyard files`, run as a process against the real api app (real Redis and FerretDB, a
volume Bucket): upload with progress, list, get, a signed URL, download (whole file, and an
image variant), delete; the admin key's --owner; another user's file; the output formats.
Exit codes: 0 done, 1 the api refused, 2 usage."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from PIL import Image
from stackyard.config import RuntimeConfig
from stackyard.resources.bucket import BucketSpec
from stackyard_harness.auth_stack import ADMIN_API_KEY, AuthStack, flushed_redis_url
from stackyard_harness.smtp import SmtpSink

STACKYARD = Path(sys.executable).with_name("stackyard")
REDIS_DATABASE = 4
PASSWORD = "a long and quiet river"


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, redis_server: Any, mongo_server: Any) -> Iterator[AuthStack]:
    if not STACKYARD.exists():
        pytest.fail(f"no {STACKYARD.name} console script next to {sys.executable}: install core (make install)")
    root = tmp_path_factory.mktemp("cli-files-buckets")
    before = os.environ.get("STACKYARD_BUCKET_ROOT")
    os.environ["STACKYARD_BUCKET_ROOT"] = str(root)
    try:
        with SmtpSink() as sink:
            redis_url = flushed_redis_url(redis_server.url, REDIS_DATABASE)
            stack = AuthStack(tmp_path_factory.mktemp("cli-files"), redis_url, mongo_server.url, sink, run_worker=False)
            yield from stack.serve()
    finally:
        if before is None:
            os.environ.pop("STACKYARD_BUCKET_ROOT", None)
        else:
            os.environ["STACKYARD_BUCKET_ROOT"] = before


@pytest.fixture
def stack(running: AuthStack) -> AuthStack:
    """A fresh database, sign-up without verification, and a volume Bucket `default`."""
    running.reset()
    running.configure({"requireEmailVerification": False})
    config = RuntimeConfig.model_validate_json((running.directory / "config.json").read_text())
    running.generation += 1
    root = Path(os.environ["STACKYARD_BUCKET_ROOT"]) / "default"
    root.mkdir(parents=True, exist_ok=True)
    spec = BucketSpec.model_validate({"stackRef": {"name": "demo"}, "backend": {"volume": {"claimName": "files"}}})
    update = {"buckets": {"default": spec}, "generation": running.generation}
    (running.directory / "config.json").write_text(config.model_copy(update=update).canonical_json())
    running.wait_applied()
    return running


def token(stack: AuthStack, email: str) -> str:
    answer = httpx.post(f"{stack.url}/v1/auth/signup", json={"email": email, "password": PASSWORD}, timeout=10)
    assert answer.status_code == 201, answer.text
    value: str = answer.json()["accessToken"]
    return value


def run(stack: AuthStack, *args: str, token: str | None = None, admin: bool = False, cwd: Path | None = None) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STACKYARD_")}
    env["STACKYARD_API_URL"] = stack.url
    if token:
        env["STACKYARD_API_TOKEN"] = token
    if admin:
        env["STACKYARD_ADMIN_KEY"] = ADMIN_API_KEY
    return subprocess.run([str(STACKYARD), *args], capture_output=True, env=env, timeout=60, check=False, cwd=cwd)


def picture() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 120, 200)).save(out, format="PNG")
    return out.getvalue()


def test_upload_list_get_url_download_and_delete(stack: AuthStack, tmp_path: Path):
    ana = token(stack, "ana@example.com")
    source = tmp_path / "cat.png"
    source.write_bytes(picture() + bytes(600_000))  # big enough for several progress lines
    done = run(stack, "-o", "json", "files", "upload", str(source), "-m", "album=pets", "--progress", token=ana)
    assert done.returncode == 0, done.stderr.decode()
    view = json.loads(done.stdout)
    assert (view["name"], view["contentType"], view["size"]) == ("cat.png", "image/png", source.stat().st_size)
    assert view["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest() and view["metadata"] == {"album": "pets"}
    progress = done.stderr.decode().splitlines()
    assert progress[-1] == f"uploading cat.png: {view['size']}/{view['size']} bytes (100%)" and len(progress) > 1

    listed = run(stack, "-o", "yaml", "files", "list", token=ana)
    assert [f["id"] for f in yaml.safe_load(listed.stdout)["items"]] == [view["id"]]
    table = run(stack, "files", "get", view["id"], token=ana).stdout.decode()
    assert "cat.png" in table and "image/png" in table and "album=pets" in table

    url = run(stack, "files", "url", view["id"], "--expires-in", "60", token=ana).stdout.decode().strip()
    assert url.startswith(f"{stack.url}/v1/files/{view['id']}/content?") and "sig=" in url
    assert httpx.get(url).content == source.read_bytes()

    fetched = run(stack, "-o", "json", "files", "download", view["id"], token=ana, cwd=tmp_path / "..")
    assert fetched.returncode == 0, fetched.stderr.decode()
    written = Path(json.loads(fetched.stdout)["path"])
    assert (tmp_path / ".." / written).read_bytes() == source.read_bytes()
    (tmp_path / ".." / written).unlink()

    thumb = tmp_path / "thumb.webp"
    small = run(stack, "files", "download", view["id"], "--to", str(thumb), "-w", "10", "-f", "webp", token=ana)
    assert small.returncode == 0, small.stderr.decode()
    assert Image.open(thumb).format == "WEBP" and Image.open(thumb).size[0] == 10
    region = tmp_path / "region.png"
    cut = run(stack, "files", "download", view["id"], "--to", str(region), "--crop", "5,5,20,10", token=ana)
    assert cut.returncode == 0, cut.stderr.decode()
    assert Image.open(region).size == (20, 10)
    north = run(stack, "files", "url", view["id"], "-w", "10", "-h", "10", "--gravity", "north", token=ana)
    assert north.returncode == 0, north.stderr.decode()
    assert "g=north" in north.stdout.decode() and httpx.get(north.stdout.decode().strip()).status_code == 200
    malformed = run(stack, "files", "url", view["id"], "--crop", "1,2,3", token=ana)
    assert malformed.returncode == 2 and "X,Y,W,H" in malformed.stderr.decode()

    gone = run(stack, "files", "delete", view["id"], token=ana)
    assert gone.returncode == 0 and f"deleted {view['id']}" in gone.stdout.decode()
    missing = run(stack, "files", "get", view["id"], token=ana)
    assert missing.returncode == 1 and "(HTTP 404)" in missing.stderr.decode()


def test_another_users_file_and_the_admin_owner(stack: AuthStack, tmp_path: Path):
    ana, bob = token(stack, "ana@example.com"), token(stack, "bob@example.com")
    source = tmp_path / "notes.txt"
    source.write_text("hello\n")
    view = json.loads(run(stack, "-o", "json", "files", "upload", str(source), token=ana).stdout)
    refused = run(stack, "files", "get", view["id"], token=bob)
    assert refused.returncode == 1 and "(HTTP 404)" in refused.stderr.decode()
    usage = run(stack, "files", "list", "--owner", view["owner"], token=bob)
    assert usage.returncode == 2 and "admin API key" in usage.stderr.decode()
    as_admin = run(stack, "-o", "json", "files", "list", "--owner", view["owner"], admin=True)
    assert [f["id"] for f in json.loads(as_admin.stdout)["items"]] == [view["id"]]
