"""Storage: uploads through stackyard's api against boto3 straight to the same MinIO, the api's
memory during a large upload, and image variants against Pillow alone, in one run.

The real api (`stackyard-api`: `create_app` over a config directory as the operator renders
it, one Bucket `default` on the harness's MinIO, Redis and FerretDB from the harness) in a
process of its own. Each upload is a streamed `POST /v1/files` (httpx sending from a
generator, 1 MiB at a time, with Content-Length; the Stack's admin API key acting for an
owner), raw (`?name=`) and multipart/form-data.

- throughput: a --size (256 MiB) file of random bytes, from a file in the page cache, through
  the api (raw and multipart) and with boto3's `upload_fileobj` (its default TransferConfig:
  8 MiB parts, 10 threads; bench/peers/boto3_upload.py in .venv-bench) into the same MinIO
  bucket. The clock runs from the first byte sent to the answer (201 with the file's record,
  or upload_fileobj's return); connections are opened before. ROUNDS rounds taking turns in
  an order that alternates; the best of each side. Goal: stackyard / boto3 >= 0.8x.
- memory: one --memory-size (1 GiB) raw upload; the api process's VmRSS read from
  /proc/<pid>/status every 20 ms before (idle, after a warm-up upload) and during it, and its
  VmHWM (reset through /proc/<pid>/clear_refs before). Goal: flat, growth under 100 MiB.
- image variants: a 2000x1500 JPEG uploaded, then --variants (24) distinct transforms
  (widths 160 to 1540, jpeg and webp in turn) each fetched once through a signed URL of
  `GET /v1/files/{id}/content` (each a new variant: read from MinIO, rendered with Pillow
  in a thread, stored, recorded, served), one after the other; then the same URLs again
  (cached: served from storage). The peer: Pillow alone doing the same transforms in this
  process (the same steps: draft, LANCZOS, the same encoder options), from bytes in memory,
  the library's ceiling; beside it stackyard.storage.images.render alone in this process.

    python bench/storage.py [--size MiB] [--memory-size MiB] [--variants N] [--rounds N] [--quick]
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ is first on sys.path and holds email.py, which would hide the standard library's
# `email` package (http.client imports it).
# ruff: noqa: E402
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import glob
import io
import json
import os
import secrets
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from PIL import Image, ImageOps
from stackyard.resources.bucket import ImageSettings
from stackyard.storage import images
from stackyard_harness.api_process import MemorySampler, multipart_body, proc_status_kib, start_api, write_bucket_config
from stackyard_harness.harness import Harness, progress
from stackyard_harness.process import exit_on_sigterm

REPO = Path(__file__).resolve().parent.parent
BENCH_PYTHON = REPO / ".venv-bench" / "bin" / "python"
PEER_SCRIPT = REPO / "bench" / "peers" / "boto3_upload.py"
MIB = 1024 * 1024
SIZE_MIB = 256
MEMORY_MIB = 1024
VARIANTS = 24
ROUNDS = 3
SEND_CHUNK = MIB
SAMPLE_EVERY = 0.02
IDLE_SECONDS = 1.0
CLOCK_TICK = os.sysconf("SC_CLK_TCK")
IMAGE_SIZE = (2000, 1500)
THROUGHPUT_GOAL = 0.8
MEMORY_GOAL_MIB = 100
OWNER = "bench-owner"
STARTUP_TIMEOUT = 120.0
REQUEST_TIMEOUT = httpx.Timeout(600.0, connect=10.0)


# -- uploads ------------------------------------------------------------------------------------


def file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as source:
        while chunk := source.read(SEND_CHUNK):
            yield chunk


def repeated_chunks(size: int, block: bytes) -> Iterator[bytes]:
    """`size` bytes: a random block sent over and over (nothing of that size in memory)."""
    sent = 0
    while sent < size:
        piece = block[: min(len(block), size - sent)]
        for start in range(0, len(piece), SEND_CHUNK):
            yield piece[start : start + SEND_CHUNK]
        sent += len(piece)


@dataclass
class Upload:
    seconds: float
    bytes: int
    file_id: str = ""

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.seconds


class Api:
    def __init__(self, url: str, admin_key: str) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {admin_key}"}
        self.http = httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT)
        self.http.get("/v1/config").raise_for_status()  # the connection, open before any clock

    def upload(self, chunks: Iterator[bytes], size: int, name: str, form: bool) -> Upload:
        params = {"owner": OWNER}
        if form:
            body, sent = multipart_body(chunks, size, name)
        else:
            body, sent = chunks, {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
            params["name"] = name
        headers = self.headers | sent
        t0 = time.perf_counter()
        answer = self.http.post("/v1/files", params=params, headers=headers, content=body)
        seconds = time.perf_counter() - t0
        if answer.status_code != 201:
            raise SystemExit(f"POST /v1/files answered {answer.status_code}: {answer.text[:500]}")
        record = answer.json()
        if record["size"] != size:
            raise SystemExit(f"the api stored {record['size']} bytes, {size} were sent")
        return Upload(seconds, size, record["id"])

    def delete(self, file_id: str) -> None:
        answer = self.http.delete(f"/v1/files/{file_id}", params={"owner": OWNER}, headers=self.headers)
        if answer.status_code != 204:
            raise SystemExit(f"DELETE /v1/files/{file_id} answered {answer.status_code}: {answer.text[:300]}")

    def signed_url(self, file_id: str, params: dict[str, str]) -> str:
        answer = self.http.get(f"/v1/files/{file_id}/url", params=params | {"owner": OWNER}, headers=self.headers)
        if answer.status_code != 200:
            raise SystemExit(f"GET /v1/files/{file_id}/url answered {answer.status_code}: {answer.text[:300]}")
        return str(answer.json()["url"])

    def close(self) -> None:
        self.http.close()


def boto3_upload(s3: Any, bucket: str, path: Path, key: str) -> Upload:
    """The peer in .venv-bench, a process of its own; the keys by environment."""
    env = os.environ | {"AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key}
    argv = [str(BENCH_PYTHON), str(PEER_SCRIPT), s3.endpoint, s3.region, bucket, key, str(path)]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600, check=False)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise SystemExit(f"boto3 upload failed (exit code {done.returncode}): {tail}")
    result = json.loads(lines[-1])
    return Upload(result["seconds"], result["bytes"])


# -- memory -------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK  # utime, stime


def reset_peak(pid: int) -> bool:
    """VmHWM back to the current RSS (Linux: 5 into clear_refs); False when refused."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


# -- images -------------------------------------------------------------------------------------


def photo(size: tuple[int, int]) -> bytes:
    """A JPEG with gradients, shapes and noise, so it compresses like a photo (about 1-2 MB)."""
    red = Image.linear_gradient("L").resize(size)
    green = Image.radial_gradient("L").resize(size)
    blue = Image.effect_noise(size, 60).point(lambda v: min(255, v + 40))
    picture = Image.merge("RGB", (red, green, blue))
    noise = Image.merge("RGB", [Image.effect_noise(size, 25)] * 3)
    picture = Image.blend(picture, noise, 0.25)
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=90)
    return out.getvalue()


def transforms(count: int) -> list[dict[str, str]]:
    """`count` distinct transforms: widths 160, 220, ... and jpeg and webp in turn."""
    return [{"w": str(160 + 60 * i), "format": "webp" if i % 2 else "jpeg"} for i in range(count)]


def pillow_alone(source: bytes, transform: dict[str, str], quality: int) -> tuple[bytes, tuple[int, int]]:
    """The same transform with Pillow and nothing else: draft, decode, orient, resize, encode."""
    image = Image.open(io.BytesIO(source))
    width = int(transform["w"])
    height = max(1, round(image.height * width / image.width))
    image.draft("RGB", (width, height))
    picture = ImageOps.exif_transpose(image.convert("RGB"))
    picture = picture.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0)
    out = io.BytesIO()
    if transform["format"] == "jpeg":
        picture.save(out, "JPEG", quality=quality, optimize=True, progressive=True)
    else:
        picture.save(out, "WEBP", quality=quality)
    return out.getvalue(), picture.size


def fetch_all(http: httpx.Client, urls: list[str]) -> tuple[float, list[bytes]]:
    bodies = []
    t0 = time.perf_counter()
    for url in urls:
        answer = http.get(url)
        if answer.status_code != 200 or not answer.headers["content-type"].startswith("image/"):
            raise SystemExit(f"GET {url.split('?')[0]} answered {answer.status_code}: {answer.text[:300]}")
        bodies.append(answer.content)
    return time.perf_counter() - t0, bodies


def check_variants(bodies: list[bytes], wanted: list[dict[str, str]]) -> None:
    for body, transform in zip(bodies, wanted, strict=True):
        with Image.open(io.BytesIO(body)) as image:
            if image.width != int(transform["w"]) or image.format.lower() != transform["format"]:
                raise SystemExit(f"asked for {transform}, got {image.format} {image.width}x{image.height}")


# -- the runs -----------------------------------------------------------------------------------


@dataclass
class Found:
    raw: list[Upload] = field(default_factory=list)
    form: list[Upload] = field(default_factory=list)
    peer: list[Upload] = field(default_factory=list)
    memory: dict[str, Any] = field(default_factory=dict)
    images: dict[str, Any] = field(default_factory=dict)


def throughput(api: Api, s3: Any, bucket: str, path: Path, size: int, rounds: int, found: Found) -> None:
    sides: list[tuple[str, Callable[[], Upload], list[Upload]]] = [
        ("stackyard raw", lambda: api.upload(file_chunks(path), size, "blob.bin", form=False), found.raw),
        ("stackyard multipart", lambda: api.upload(file_chunks(path), size, "blob.bin", form=True), found.form),
        ("boto3", lambda: boto3_upload(s3, bucket, path, f"peer/{secrets.token_hex(6)}"), found.peer),
    ]
    for r in range(rounds):
        order = sides if r % 2 == 0 else list(reversed(sides))
        cells = []
        for name, run, into in order:
            done = run()
            if done.file_id:
                api.delete(done.file_id)
            into.append(done)
            cells.append(f"{name} {done.mb_per_s:,.0f} MB/s")
        progress(f"round {r + 1}/{rounds}: " + ", ".join(cells))


def memory(api: Api, pid: int, size: int, found: Found, fresh_kib: int) -> None:
    block = os.urandom(8 * MIB)
    progress(f"memory: idle RSS of the api for {IDLE_SECONDS:.0f} s")
    with MemorySampler(pid, SAMPLE_EVERY) as at_rest:
        time.sleep(IDLE_SECONDS)
    idle = at_rest.rss
    reset = reset_peak(pid)
    cpu0 = cpu_seconds(pid)
    progress(f"memory: one {size // MIB:,} MiB raw upload, VmRSS every {SAMPLE_EVERY * 1000:.0f} ms")
    with MemorySampler(pid, SAMPLE_EVERY) as sampler:
        done = api.upload(repeated_chunks(size, block), size, "big.bin", form=False)
    peak_hwm = proc_status_kib(pid)["VmHWM"]
    cpu = cpu_seconds(pid) - cpu0
    api.delete(done.file_id)
    found.memory = {
        "idle_kib": statistics.median(idle),
        "fresh_kib": fresh_kib,
        "peak_kib": sampler.vm_rss,
        "hwm_kib": peak_hwm,
        "hwm_reset": reset,
        "samples": sampler.samples,
        "cpu_s": cpu,
        "upload": done,
    }
    growth = (max(sampler.vm_rss, peak_hwm) - statistics.median(idle)) / 1024
    progress(f"memory: peak {sampler.vm_rss / 1024:.0f} MiB, +{growth:.0f} MiB, {done.mb_per_s:,.0f} MB/s")


def image_variants(api: Api, count: int, found: Found) -> None:
    progress(f"images: a {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]} JPEG, {count} distinct variants")
    source = photo(IMAGE_SIZE)
    uploaded = api.upload(iter([source]), len(source), "photo.jpg", form=False)
    wanted = transforms(count)
    urls = [api.signed_url(uploaded.file_id, t) for t in wanted]
    quality = ImageSettings().default_quality
    with httpx.Client(timeout=REQUEST_TIMEOUT) as http:
        http.get(f"{api.url}/v1/config").raise_for_status()
        progress(f"images: {count} new variants through GET /v1/files/{{id}}/content, one after the other")
        fresh_s, bodies = fetch_all(http, urls)
        check_variants(bodies, wanted)
        progress(f"images: the same {count} URLs again (cached variants)")
        cached_s, again = fetch_all(http, urls)
        if again != bodies:
            raise SystemExit("a cached variant differs from the one first served")
        progress(f"images: the original {count} times through the same route (no transform), for the floor")
        plain = api.signed_url(uploaded.file_id, {})
        original_s, originals = fetch_all(http, [plain] * count)
        if originals[0] != source:
            raise SystemExit("the original served differs from the one uploaded")
    progress(f"images: Pillow alone, the same {count} transforms in this process")
    pillow_alone(source, wanted[0], quality)  # warm (codecs loaded)
    t0 = time.perf_counter()
    for transform in wanted:
        pillow_alone(source, transform, quality)
    pillow_s = time.perf_counter() - t0
    progress(f"images: stackyard.storage.images.render alone, the same {count} transforms in this process")
    settings = ImageSettings()
    t0 = time.perf_counter()
    for transform in wanted:
        images.render(io.BytesIO(source), images.parse_transform(transform, settings), settings)  # type: ignore[arg-type]
    render_s = time.perf_counter() - t0
    api.delete(uploaded.file_id)
    found.images = {
        "count": count,
        "source_bytes": len(source),
        "fresh_s": fresh_s,
        "cached_s": cached_s,
        "original_s": original_s,
        "pillow_s": pillow_s,
        "render_s": render_s,
        "variant_bytes": sum(len(b) for b in bodies),
    }


# -- the report ---------------------------------------------------------------------------------


def best(uploads: list[Upload]) -> Upload:
    return min(uploads, key=lambda u: u.seconds)


def report(found: Found, size: int, rounds: int) -> None:
    print(f"\nStorage on MinIO (harness), the api as a process; uploads of {size // MIB} MiB, best of {rounds}")
    rows: list[tuple[str, str, str, str, str]] = []
    ours, form, peer = best(found.raw), best(found.form), best(found.peer)
    ratio = ours.mb_per_s / peer.mb_per_s
    verdict = "met" if ratio >= THROUGHPUT_GOAL else "MISSED"
    rows.append(
        (
            "upload MB/s, POST /v1/files raw",
            f"{ours.mb_per_s:,.0f}",
            f"boto3 {peer.mb_per_s:,.0f}",
            f"{ratio:.2f}x",
            f">= {THROUGHPUT_GOAL}x: {verdict}",
        )
    )
    rows.append(
        (
            "upload MB/s, POST /v1/files multipart",
            f"{form.mb_per_s:,.0f}",
            f"boto3 {peer.mb_per_s:,.0f}",
            f"{form.mb_per_s / peer.mb_per_s:.2f}x",
            f">= {THROUGHPUT_GOAL}x: {'met' if form.mb_per_s / peer.mb_per_s >= THROUGHPUT_GOAL else 'MISSED'}",
        )
    )
    m = found.memory
    if m:
        top = max(m["peak_kib"], m["hwm_kib"]) / 1024
        growth, first = top - m["idle_kib"] / 1024, top - m["fresh_kib"] / 1024
        upload: Upload = m["upload"]
        rows.append(
            (
                f"api peak RSS MiB, {upload.bytes // MIB:,} MiB upload",
                f"{top:.0f}",
                f"idle {m['idle_kib'] / 1024:.0f}",
                f"+{growth:.0f} MiB",
                f"growth < {MEMORY_GOAL_MIB} MiB: {'met' if growth < MEMORY_GOAL_MIB else 'MISSED'}",
            )
        )
        rows.append(
            (
                "  the same, over the api before any upload",
                f"{top:.0f}",
                f"fresh {m['fresh_kib'] / 1024:.0f}",
                f"+{first:.0f} MiB",
                f"growth < {MEMORY_GOAL_MIB} MiB: {'met' if first < MEMORY_GOAL_MIB else 'MISSED'}",
            )
        )
    i = found.images
    if i:
        n = i["count"]
        fresh, cached, pillow = n / i["fresh_s"], n / i["cached_s"], n / i["pillow_s"]
        peer_cell = f"Pillow {pillow:.1f}"
        rows.append(("new image variants/s", f"{fresh:.1f}", peer_cell, f"{fresh / pillow:.2f}x", "-"))
        rows.append(("cached image variants/s", f"{cached:.1f}", peer_cell, f"{cached / pillow:.2f}x", "-"))
    head = f"{'figure':<42} {'stackyard':>10} {'peer':>16} {'ratio':>10}  goal"
    print(head)
    print("-" * (len(head) + 20))
    for name, value, theirs, r, goal in rows:
        print(f"{name:<42} {value:>10} {theirs:>16} {r:>10}  {goal}")
    print()

    def runs(uploads: list[Upload]) -> str:
        return ", ".join(f"{u.mb_per_s:,.0f}" for u in uploads)

    print(f"upload rounds (MB/s): stackyard raw {runs(found.raw)}; multipart {runs(found.form)};")
    print(f"  boto3 upload_fileobj (default TransferConfig: 8 MiB parts, 10 threads) {runs(found.peer)}")
    if m:
        hwm_note = "VmHWM reset before the upload" if m["hwm_reset"] else "VmHWM not resettable: lifetime peak"
        print(
            f"memory: RSS {m['fresh_kib'] / 1024:.0f} MiB once serving, idle {m['idle_kib'] / 1024:.0f} MiB (median,"
            f" after a 16 MiB warm-up upload); during the upload"
            f" VmRSS max {m['peak_kib'] / 1024:.0f} MiB over {m['samples']} samples,"
            f" VmHWM {m['hwm_kib'] / 1024:.0f} MiB ({hwm_note}); the upload itself {m['upload'].mb_per_s:,.0f} MB/s,"
            f" the api busy {m['cpu_s'] / m['upload'].seconds:.0%} of a core"
        )
    if i:
        n = i["count"]

        def each(key: str) -> str:
            return f"{i[key] / n * 1000:.1f} ms"

        print(
            f"images: a {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]} JPEG of {i['source_bytes'] / 1e6:.1f} MB, {n} variants"
            f" (widths 160-{160 + 60 * (n - 1)}, jpeg and webp in turn, quality {ImageSettings().default_quality}),"
            f" one request at a time: a new variant {each('fresh_s')}, a cached one {each('cached_s')},"
            f" the original through the same route {each('original_s')}; in this process: Pillow alone"
            f" {each('pillow_s')}, stackyard.storage.images.render alone {each('render_s')}"
        )


# -- main ---------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=SIZE_MIB, help="MiB of the throughput uploads")
    parser.add_argument("--memory-size", type=int, default=MEMORY_MIB, help="MiB of the memory upload")
    parser.add_argument("--variants", type=int, default=VARIANTS, help="distinct image transforms")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="throughput rounds (best of)")
    parser.add_argument("--quick", action="store_true", help="64 MiB, 256 MiB, 8 variants, 1 round")
    have_postgres = bool(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    parser.add_argument(
        "--mongo-backend",
        choices=["sqlite", "postgresql"],
        default="postgresql" if have_postgres else "sqlite",
        help="FerretDB's storage (default: postgresql when Debian's postgresql is installed)",
    )
    args = parser.parse_args()
    if args.quick:
        args.size, args.memory_size, args.variants, args.rounds = 64, 256, 8, 1
    if not BENCH_PYTHON.exists():
        raise SystemExit(f"{BENCH_PYTHON.relative_to(REPO)} is missing: `make bench` makes it (boto3)")

    exit_on_sigterm()
    size, memory_size = args.size * MIB, args.memory_size * MIB
    found = Found()
    os.environ["STACKYARD_FERRETDB_BACKEND"] = args.mongo_backend
    progress(f"FerretDB with its {args.mongo_backend} backend")
    with Harness() as harness:
        s3 = harness.service("s3")
        redis_url = harness.service("redis").url  # type: ignore[attr-defined]
        mongo_url = harness.service("mongo").url  # type: ignore[attr-defined]
        bucket = s3.create_bucket("bench")  # type: ignore[attr-defined]
        work = harness.run_dir / "storage-bench"
        admin_key = secrets.token_urlsafe(24)
        write_bucket_config(
            work / "config",
            s3,
            bucket,
            redis_url,
            mongo_url,
            admin_key,
            limits={"maxObjectSize": "16Gi"},
            database="bench_storage",
            stack="bench",
        )
        progress("starting stackyard-api (one Bucket on MinIO)")
        server, url = start_api(work / "config", work / "config", timeout=STARTUP_TIMEOUT)
        api = Api(url, admin_key)
        try:
            pid = server.proc.pid  # type: ignore[union-attr]
            path = work / "upload.bin"
            progress(f"writing {args.size} MiB of random bytes to {path}")
            with path.open("wb") as out:
                for _ in range(args.size):
                    out.write(os.urandom(MIB))
            fresh_kib = proc_status_kib(pid)["VmRSS"]
            progress("warm-up: one 16 MiB upload through the api")
            api.delete(api.upload(repeated_chunks(16 * MIB, os.urandom(MIB)), 16 * MIB, "warm.bin", False).file_id)
            memory(api, pid, memory_size, found, fresh_kib)
            progress(f"throughput: {args.size} MiB, {args.rounds} rounds (stackyard raw, multipart, boto3)")
            throughput(api, s3, bucket, path, size, args.rounds, found)
            path.unlink()
            image_variants(api, args.variants, found)
        finally:
            api.close()
            server.stop()
    print(f"\nFerretDB 1.x on {args.mongo_backend}")
    report(found, size, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
