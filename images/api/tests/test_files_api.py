"""/v1/files through HTTP against the real api app, real Redis and FerretDB, and both
storage backends: MinIO (S3) and a volume directory. Streamed uploads (multipart and raw,
one larger than the memory the upload may take, measured with tracemalloc), direct uploads
(a presigned POST straight to MinIO, the api's signed PUT for a volume) and their
completion, signed downloads (expiry, a tampered signature, a changed parameter), Range,
image transforms, the size limit, the quota, a refused type, a public Bucket, another
user's file, no Bucket at all, and schemathesis over the routes."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import time
import tracemalloc
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest
from auth_http import bearer, check_operations, problem, route_labels, sign_up_and_log_in
from PIL import Image
from stackyard.config import RuntimeConfig, credential_key
from stackyard.resources.bucket import BucketSpec
from stackyard_harness.auth_stack import ADMIN_API_KEY, AuthStack

REDIS_DATABASE = 4
AUTH_SETTINGS = {"requireEmailVerification": False}
ADMIN = {"Authorization": f"Bearer {ADMIN_API_KEY}"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png(width: int = 64, height: int = 48) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 60)).save(out, format="PNG")
    return out.getvalue()


# -- Buckets in the config ------------------------------------------------------------------


@pytest.fixture(scope="module")
def bucket_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """STACKYARD_BUCKET_ROOT for the volume Buckets (the api runs in this process)."""
    root = tmp_path_factory.mktemp("buckets")
    before = os.environ.get("STACKYARD_BUCKET_ROOT")
    os.environ["STACKYARD_BUCKET_ROOT"] = str(root)
    yield root
    if before is None:
        os.environ.pop("STACKYARD_BUCKET_ROOT", None)
    else:
        os.environ["STACKYARD_BUCKET_ROOT"] = before


class Buckets:
    """Puts Buckets in the config in force, as the operator renders them."""

    def __init__(self, stack: AuthStack, s3: Any, root: Path) -> None:
        self.stack, self.s3, self.root = stack, s3, root

    def backend(self, kind: str, name: str) -> dict[str, Any]:
        if kind == "volume":
            (self.root / name).mkdir(parents=True, exist_ok=True)
            return {"volume": {"claimName": f"{name}-files"}}
        refs = {
            "accessKeyIdSecretRef": {"name": "s3", "key": "id"},
            "secretAccessKeySecretRef": {"name": "s3", "key": "secret"},
        }
        s3 = {
            "endpoint": self.s3.endpoint,
            "region": self.s3.region,
            "bucket": self.s3.create_bucket("files"),
            "pathStyle": True,
        }
        return {"s3": s3 | refs}

    def apply(self, buckets: dict[str, dict[str, Any]]) -> None:
        config = RuntimeConfig.model_validate_json((self.stack.directory / "config.json").read_text())
        self.stack.generation += 1
        specs = {n: BucketSpec.model_validate({"stackRef": {"name": "demo"}} | b) for n, b in buckets.items()}
        credentials: dict[str, str] = {}
        for name, spec in specs.items():
            if spec.backend.s3 is not None:
                credentials[credential_key("Bucket", name, "accessKeyId")] = self.s3.access_key
                credentials[credential_key("Bucket", name, "secretAccessKey")] = self.s3.secret_key
        if credentials:
            self.stack.set_credentials(**credentials)
        config = config.model_copy(update={"buckets": specs, "generation": self.stack.generation})
        (self.stack.directory / "config.json").write_text(config.canonical_json())
        self.stack.wait_applied()

    def one(self, kind: str, name: str = "default", **fields: Any) -> str:
        self.apply({name: {"backend": self.backend(kind, name)} | fields})
        return name


@pytest.fixture
def buckets(auth: AuthStack, s3_server: Any, bucket_root: Path) -> Buckets:
    return Buckets(auth, s3_server, bucket_root)


@pytest.fixture(params=["s3", "volume"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def ana(http: httpx.Client) -> dict[str, str]:
    return bearer(sign_up_and_log_in(http, "ana@example.com"))


@pytest.fixture
def bob(http: httpx.Client) -> dict[str, str]:
    return bearer(sign_up_and_log_in(http, "bob@example.com"))


def upload_form(
    http: httpx.Client, headers: dict[str, str], data: bytes, name: str = "photo.png", **fields: str
) -> httpx.Response:
    return http.post("/v1/files", headers=headers, data=fields, files={"file": (name, data, "image/png")})


def uploaded(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    assert answer.headers["location"] == f"/v1/files/{body['id']}"
    return body


def signed(http: httpx.Client, headers: dict[str, str], file_id: str, **params: Any) -> str:
    answer = http.get(f"/v1/files/{file_id}/url", headers=headers, params=params)
    assert answer.status_code == 200, answer.text
    url: str = answer.json()["url"]
    assert datetime.fromisoformat(answer.json()["expiresAt"]).timestamp() > time.time()
    return url


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


# -- uploads -------------------------------------------------------------------------------


def test_a_multipart_upload_is_stored_with_its_detected_type_and_read_back(
    buckets: Buckets, kind: str, http: httpx.Client, ana: dict[str, str]
):
    buckets.one(kind)
    data = png()
    body = uploaded(upload_form(http, ana, data, "été photo.png", **{"metadata.album": "summer", "camera": "x100"}))
    assert body["id"].startswith("f_") and body["name"] == "été photo.png"
    assert (body["contentType"], body["size"], body["state"]) == ("image/png", len(data), "available")
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["metadata"] == {"album": "summer", "camera": "x100"}
    assert http.get(f"/v1/files/{body['id']}", headers=ana).json() == body
    listed = http.get("/v1/files", headers=ana).json()
    assert [f["id"] for f in listed["items"]] == [body["id"]] and listed["nextCursor"] is None

    got = http.get(path_of(signed(http, ana, body["id"], download="true")))
    assert got.status_code == 200 and got.content == data
    assert got.headers["content-type"] == "image/png" and got.headers["content-length"] == str(len(data))
    assert got.headers["etag"] == f'"{body["sha256"]}"'
    assert got.headers["cache-control"].startswith("private, max-age=")
    assert got.headers["content-disposition"] == (
        "attachment; filename=\"_t_ photo.png\"; filename*=UTF-8''%C3%A9t%C3%A9%20photo.png"
    )
    assert (
        http.get(path_of(signed(http, ana, body["id"])), headers={"If-None-Match": got.headers["etag"]}).status_code
        == 304
    )


def test_a_raw_body_upload_takes_its_name_and_metadata_from_the_query(
    buckets: Buckets, kind: str, http: httpx.Client, ana: dict[str, str]
):
    buckets.one(kind)
    text = b"name,count\nana,3\n"
    answer = http.post(
        "/v1/files",
        params={"name": "counts.csv", "metadata.source": "export"},
        headers=ana | {"Content-Type": "image/png"},
        content=text,
    )
    body = uploaded(answer)
    assert body["name"] == "counts.csv" and body["contentType"] == "text/csv", "detected, not declared"
    assert body["metadata"] == {"source": "export"}
    assert http.get(path_of(signed(http, ana, body["id"]))).content == text
    problem(http.post("/v1/files", headers=ana, content=b"no name"), 400, "malformed-upload")


def test_an_upload_larger_than_memory_is_streamed(buckets: Buckets, kind: str, http: httpx.Client, ana: dict[str, str]):
    """96 MiB through the api while the process's Python allocations (the api and this
    test client together) stay at most three quarters of it: neither the form nor the file
    is held whole. On S3 the peak is the parts in flight (PARTS_IN_FLIGHT), the one being
    received and the transports' buffers; it does not grow with the size (45, 60 and 53 MiB
    measured for 32, 64 and 96 MiB), and on a volume it is about 2 MiB."""
    buckets.one(kind)
    size, block = 96 * 1024 * 1024, bytes(range(256)) * 256  # 64 KiB blocks
    bound = size * 3 // 4
    digest = hashlib.sha256()

    def body() -> Iterator[bytes]:
        for _ in range(size // len(block)):
            digest.update(block)
            yield block

    tracemalloc.start()
    try:
        answer = http.post(
            "/v1/files",
            params={"name": "big.bin"},
            headers=ana | {"Content-Length": str(size)},
            content=body(),
            timeout=120,
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    found = uploaded(answer)
    assert found["size"] == size and found["sha256"] == digest.hexdigest()
    assert peak < bound, f"the upload took {peak / 2**20:.1f} MiB of Python memory"


def test_a_multipart_field_after_the_file_is_refused_and_nothing_is_kept(
    buckets: Buckets, kind: str, http: httpx.Client, ana: dict[str, str]
):
    buckets.one(kind)
    boundary = "b0undary"
    parts = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'.encode()
        + png()
        + f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="late"\r\n\r\nx\r\n--{boundary}--\r\n'.encode()
    )
    answer = http.post(
        "/v1/files", headers=ana | {"Content-Type": f"multipart/form-data; boundary={boundary}"}, content=parts
    )
    problem(answer, 400, "malformed-upload")
    assert http.get("/v1/files", headers=ana).json()["items"] == []
    problem(http.post("/v1/files", headers=ana, data={"only": "fields"}, files={}), 400, "malformed-upload")


def test_too_large_over_quota_and_refused_types(buckets: Buckets, kind: str, http: httpx.Client, ana: dict[str, str]):
    buckets.one(kind, limits={"maxObjectSize": "2Ki", "quotaPerOwner": "3Ki", "allowedContentTypes": ["image/*"]})
    problem(
        http.post("/v1/files", params={"name": "big.png"}, headers=ana, content=PNG_MAGIC + bytes(3000)),
        413,
        "file-too-large",
    )
    problem(upload_form(http, ana, b"just some text\n", "notes.png"), 415, "content-type-refused")
    uploaded(upload_form(http, ana, PNG_MAGIC + bytes(1800), "one.png"))
    problem(upload_form(http, ana, PNG_MAGIC + bytes(1800), "two.png"), 413, "quota-exceeded")
    assert len(http.get("/v1/files", headers=ana).json()["items"]) == 1


# -- direct uploads ------------------------------------------------------------------------


def test_a_direct_upload_goes_to_the_storage_then_completes(
    buckets: Buckets, kind: str, http: httpx.Client, ana: dict[str, str]
):
    buckets.one(kind)
    data = png(20, 10)
    start = http.post(
        "/v1/files/uploads", headers=ana, json={"name": "d.png", "contentType": "image/png", "size": len(data)}
    )
    assert start.status_code == 201, start.text
    direct = start.json()
    file_id = direct["file"]["id"]
    assert direct["file"]["state"] == "pending"
    problem(http.get(path_of(signed(http, ana, file_id))), 409, "file-not-available")
    if kind == "s3":
        assert direct["method"] == "POST" and direct["url"].startswith(buckets.s3.endpoint)
        sent = httpx.post(direct["url"], data=direct["fields"], files={"file": ("d.png", data, "image/png")})
    else:
        assert direct["method"] == "PUT" and "/v1/files/" in direct["url"]
        sent = http.put(path_of(direct["url"]), content=data)
    assert sent.status_code in (200, 201, 204), sent.text
    done = http.post(f"/v1/files/{file_id}/complete", headers=ana)
    assert done.status_code == 200, done.text
    assert (done.json()["state"], done.json()["contentType"], done.json()["size"]) == (
        "available",
        "image/png",
        len(data),
    )
    assert http.get(path_of(signed(http, ana, file_id))).content == data


def test_a_direct_upload_of_another_size_is_incomplete(buckets: Buckets, http: httpx.Client, ana: dict[str, str]):
    buckets.one("volume")
    start = http.post("/v1/files/uploads", headers=ana, json={"name": "d.png", "size": 100}).json()
    problem(http.post(f"/v1/files/{start['file']['id']}/complete", headers=ana), 409, "upload-incomplete")
    tampered = start["url"].replace("sig=", "sig=A")
    problem(http.put(path_of(tampered), content=b"x" * 100), 403, "signature-invalid")


# -- signed downloads ----------------------------------------------------------------------


def test_signed_urls_expire_and_refuse_any_change(buckets: Buckets, kind: str, http: httpx.Client, ana: dict[str, str]):
    buckets.one(kind)
    file_id = uploaded(upload_form(http, ana, png()))["id"]
    url = path_of(signed(http, ana, file_id, w=16))
    query = dict(parse_qsl(urlsplit(url).query))
    garbled = query["sig"][:-2] + ("BB" if query["sig"].endswith("AA") else "AA")
    for changed in ({"w": "17"}, {"sig": garbled}, {"exp": str(int(query["exp"]) + 60)}):
        problem(http.get(f"/v1/files/{file_id}/content?" + urlencode(query | changed)), 403, "signature-invalid")
    problem(http.get(f"/v1/files/{file_id}/content"), 403, "signature-invalid")
    short = path_of(signed(http, ana, file_id, expiresIn=1))
    time.sleep(2.1)
    problem(http.get(short), 403, "signature-expired")


def test_ranges_are_served_partially(buckets: Buckets, kind: str, http: httpx.Client, ana: dict[str, str]):
    buckets.one(kind)
    data = b"0123456789" * 100
    file_id = uploaded(http.post("/v1/files", params={"name": "digits.txt"}, headers=ana, content=data))["id"]
    url = path_of(signed(http, ana, file_id))
    part = http.get(url, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == data[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{len(data)}" and part.headers["content-length"] == "10"
    tail = http.get(url, headers={"Range": "bytes=-5"})
    assert tail.status_code == 206 and tail.content == data[-5:]
    rest = http.get(url, headers={"Range": "bytes=995-"})
    assert rest.status_code == 206 and rest.content == data[995:]
    outside = http.get(url, headers={"Range": "bytes=5000-"})
    assert outside.status_code == 416 and outside.headers["content-range"] == f"bytes */{len(data)}"


def test_an_image_variant_is_rendered_and_served(buckets: Buckets, kind: str, http: httpx.Client, ana: dict[str, str]):
    buckets.one(kind)
    file_id = uploaded(upload_form(http, ana, png(64, 48)))["id"]
    for _ in range(2):  # rendered once, then read from the storage
        got = http.get(path_of(signed(http, ana, file_id, w=16, format="webp")))
        assert got.status_code == 200, got.text
        assert got.headers["content-type"] == "image/webp"
        assert Image.open(io.BytesIO(got.content)).size[0] == 16
    problem(http.get(f"/v1/files/{file_id}/url", headers=ana, params={"preset": "nope"}), 422, "image-refused")


def test_a_signed_url_with_crop_and_gravity_serves_the_region(
    buckets: Buckets, kind: str, http: httpx.Client, ana: dict[str, str]
):
    buckets.one(kind)
    halves = Image.new("RGB", (80, 40), (255, 0, 0))
    halves.paste((0, 0, 255), (40, 0, 80, 40))  # left half red, right half blue
    out = io.BytesIO()
    halves.save(out, format="PNG")
    file_id = uploaded(upload_form(http, ana, out.getvalue()))["id"]
    url = signed(http, ana, file_id, crop="30,5,20,10", format="png")
    assert "crop=30%2C5%2C20%2C10" in url
    region = http.get(path_of(url))
    assert region.status_code == 200, region.text
    cut = Image.open(io.BytesIO(region.content)).convert("RGB")
    assert cut.size == (20, 10)
    assert [cut.getpixel((x, 5)) for x in (0, 9, 10, 19)] == [(255, 0, 0)] * 2 + [(0, 0, 255)] * 2
    for gravity, channel in (("west", 0), ("east", 2)):  # red for west, blue for east
        square = http.get(path_of(signed(http, ana, file_id, w=10, h=10, g=gravity, format="png")))
        assert square.status_code == 200, square.text
        pixels = Image.open(io.BytesIO(square.content)).convert("RGB")
        for xy in [(x, y) for x in (0, 5, 9) for y in (0, 9)]:  # near the border, a little of the other half
            assert pixels.getpixel(xy)[channel] > 200 and pixels.getpixel(xy)[2 - channel] < 40  # type: ignore[index]
    # The region is checked against the image when the variant is rendered; g only with cover.
    outside = signed(http, ana, file_id, crop="70,0,20,10")
    refused = problem(http.get(path_of(outside)), 422, "image-refused")
    assert "which is 80x40" in refused["detail"]
    problem(http.get(f"/v1/files/{file_id}/url", headers=ana, params={"crop": "0,0,0,5"}), 422, "image-refused")
    problem(
        http.get(f"/v1/files/{file_id}/url", headers=ana, params={"w": 5, "h": 5, "fit": "fill", "g": "north"}),
        422,
        "image-refused",
    )
    # Changing the crop breaks the signature.
    tampered = path_of(url).replace("crop=30%2C5", "crop=31%2C5")
    problem(http.get(tampered), 403, "signature-invalid")


def test_a_public_bucket_serves_without_a_signature(
    buckets: Buckets, kind: str, http: httpx.Client, ana: dict[str, str]
):
    buckets.one(kind, visibility="public", images={"presets": {"thumb": {"width": 8, "format": "png"}}})
    data = png()
    file_id = uploaded(upload_form(http, ana, data))["id"]
    plain = http.get(f"/v1/files/{file_id}/content")
    assert plain.status_code == 200 and plain.content == data
    assert plain.headers["cache-control"].startswith("public")
    thumb = http.get(f"/v1/files/{file_id}/content", params={"preset": "thumb"})
    assert thumb.status_code == 200 and Image.open(io.BytesIO(thumb.content)).size[0] == 8
    problem(http.get(f"/v1/files/{file_id}/content", params={"w": 10}), 403, "signature-invalid")


# -- who sees what -------------------------------------------------------------------------


def test_another_users_file_is_not_found_and_the_admin_key_acts_for_an_owner(
    buckets: Buckets, http: httpx.Client, ana: dict[str, str], bob: dict[str, str]
):
    buckets.one("volume")
    file_id = uploaded(upload_form(http, ana, png()))["id"]
    for method, path in (
        ("GET", f"/v1/files/{file_id}"),
        ("GET", f"/v1/files/{file_id}/url"),
        ("DELETE", f"/v1/files/{file_id}"),
        ("POST", f"/v1/files/{file_id}/complete"),
    ):
        problem(http.request(method, path, headers=bob), 404, "file-not-found")
    assert http.get("/v1/files", headers=bob).json()["items"] == []
    problem(http.get("/v1/files"), 401, "invalid-token")
    owner = http.get(f"/v1/files/{file_id}", headers=ana).json()["owner"]
    assert [f["id"] for f in http.get("/v1/files", headers=ADMIN, params={"owner": owner}).json()["items"]] == [file_id]
    for_ana = http.post("/v1/files", params={"name": "for-ana.png", "owner": owner}, headers=ADMIN, content=png())
    assert uploaded(for_ana)["owner"] == owner
    assert http.delete(f"/v1/files/{file_id}", headers=ana).status_code == 204
    problem(http.get(f"/v1/files/{file_id}", headers=ana), 404, "file-not-found")


def test_pages_follow_the_cursor(buckets: Buckets, http: httpx.Client, ana: dict[str, str]):
    buckets.one("volume")
    ids = [
        uploaded(http.post("/v1/files", params={"name": f"{i}.txt"}, headers=ana, content=b"x"))["id"] for i in range(5)
    ]
    first = http.get("/v1/files", headers=ana, params={"limit": 2}).json()
    second = http.get("/v1/files", headers=ana, params={"limit": 2, "cursor": first["nextCursor"]}).json()
    third = http.get("/v1/files", headers=ana, params={"limit": 2, "cursor": second["nextCursor"]}).json()
    seen = [f["id"] for page in (first, second, third) for f in page["items"]]
    assert seen == ids[::-1] and third["nextCursor"] is None


def test_without_a_bucket_the_routes_say_so(auth: AuthStack, http: httpx.Client, ana: dict[str, str]):
    body = problem(http.get("/v1/files", headers=ana), 503, "not-configured")
    assert "Bucket" in body["detail"]
    assert http.get("/v1/config").json()["buckets"] == []


def test_the_config_names_the_buckets_in_force(buckets: Buckets, http: httpx.Client):
    buckets.apply(
        {
            "media": {"backend": buckets.backend("s3", "media")},
            "avatars": {"backend": buckets.backend("volume", "avatars")},
        }
    )
    assert http.get("/v1/config").json()["buckets"] == ["avatars", "media"]


def test_the_routes_answer_what_their_openapi_says(buckets: Buckets, http: httpx.Client, ana: dict[str, str]):
    """schemathesis over routers/files.py with a user's token: never a server error, always
    a declared answer."""
    from stackyard_api.routers import files

    buckets.one("volume")
    uploaded(upload_form(http, ana, png()))
    check_operations(buckets.stack.url, r"^/v1/files", route_labels(files.router), lambda case: ana)


def test_delivery_redirect_sends_the_client_to_the_storage(buckets: Buckets, http: httpx.Client, ana: dict[str, str]):
    buckets.one("s3", delivery="redirect")
    data = png()
    file_id = uploaded(upload_form(http, ana, data))["id"]
    answer = http.get(path_of(signed(http, ana, file_id, download="true")))
    assert answer.status_code == 302 and answer.headers["location"].startswith(buckets.s3.endpoint)
    assert httpx.get(answer.headers["location"]).content == data


# -- the SDK -------------------------------------------------------------------------------


def test_the_sdk_uploads_lists_signs_and_downloads(
    buckets: Buckets, kind: str, auth: AuthStack, ana: dict[str, str], tmp_path: Path
):
    from stackyard.client import AsyncStackyard, NotFound, Stackyard

    buckets.one(kind)
    token = ana["Authorization"].removeprefix("Bearer ")
    source = tmp_path / "cat.png"
    source.write_bytes(png(32, 32) + bytes(300_000))
    seen: list[tuple[int, int | None]] = []
    with Stackyard(auth.url, token=token, admin_key=ADMIN_API_KEY) as stackyard:
        view = stackyard.files.upload(source, metadata={"k": "v"}, progress=lambda d, t: seen.append((d, t)))
        assert (view.name, view.content_type, view.metadata) == ("cat.png", "image/png", {"k": "v"})
        assert seen[-1] == (view.size, view.size) and len(seen) > 1
        direct = stackyard.files.upload_direct(source, name="direct.png")
        assert direct.state == "available" and direct.size == view.size
        assert [f.id for f in stackyard.files.iterate(page_size=1)] == [direct.id, view.id]
        target = tmp_path / "back.png"
        assert stackyard.files.download(view.id, target) == view.size
        assert target.read_bytes() == source.read_bytes()
        small = tmp_path / "small.webp"
        stackyard.files.download(view.id, small, width=8, format="webp")
        assert Image.open(small).size == (8, 8)
        region = tmp_path / "region.png"
        stackyard.files.download(view.id, region, crop=(4, 4, 12, 6), format="png")
        assert Image.open(region).size == (12, 6)
        assert "g=north" in stackyard.files.url(view.id, width=8, height=8, gravity="north").url
        for_owner = stackyard.files.upload(b"hello", name="hi.txt", owner=view.owner)
        assert for_owner.owner == view.owner and stackyard.files.read(for_owner.id) == b"hello"
        stackyard.files.delete(view.id)
        with pytest.raises(NotFound):
            stackyard.files.get(view.id)
        with pytest.raises(NotFound):
            stackyard.files.download(view.id, tmp_path / "gone.png")
        assert not (tmp_path / "gone.png").exists() and not (tmp_path / "gone.png.part").exists()

    async def from_asyncio() -> tuple[bytes, list[str]]:
        async with AsyncStackyard(auth.url, token=token) as client:
            made = await client.files.upload(io.BytesIO(b"async bytes"), name="a.txt")
            direct = await client.files.upload_direct(b"direct bytes", name="d.txt")
            ids = [f.id async for f in client.files.iterate()]
            assert ids[:2] == [direct.id, made.id]
            return await client.files.read(made.id), ids

    body, _ = asyncio.run(from_asyncio())
    assert body == b"async bytes"
