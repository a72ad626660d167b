"""`stackyard files`: files in the Stack's Buckets — upload (streamed, through the api or
straight to the storage), list, show, signed URLs (with image transforms), download, delete.

Commands act for the user of $STACKYARD_API_TOKEN; `--owner` acts for any user with the
admin API key (--admin-key or $STACKYARD_ADMIN_KEY). Uploads and downloads show their
progress on stderr when it is a terminal (--progress forces plain lines, --no-progress
hides it)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .context import EXIT_USAGE, Cli, admin_key_option, cli, fail
from .output import Table, emit, when

if TYPE_CHECKING:  # the SDK is imported when a command runs, so that --help starts fast
    from stackyard.storage.contract import FileView

app = typer.Typer(
    help="Files: upload (streamed), list, show, signed URLs with image transforms, download, delete.",
    no_args_is_help=True,
)


admin_key_option(app)


FileId = Annotated[str, typer.Argument(metavar="ID", help="The file's id (f_…).")]
Bucket = Annotated[str | None, typer.Option("--bucket", "-b", help="The Bucket (default: the Stack's default one).")]
OwnerOpt = Annotated[
    str | None, typer.Option("--owner", help="Act for this user (needs the admin API key).", show_default=False)
]
ProgressOpt = Annotated[
    bool | None,
    typer.Option(
        "--progress/--no-progress", help="Show progress (default: when stderr is a terminal).", show_default=False
    ),
]


def _settings(ctx: typer.Context, owner: str | None) -> Cli:
    settings = cli(ctx)
    if owner is not None and not settings.admin_key:
        fail("--owner needs the Stack's admin API key: --admin-key or $STACKYARD_ADMIN_KEY", EXIT_USAGE)
    return settings


def human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover


def file_table(view: FileView) -> Table:
    rows = [
        ["ID", view.id],
        ["NAME", view.name],
        ["BUCKET", view.bucket],
        ["OWNER", view.owner],
        ["TYPE", view.content_type],
        ["SIZE", f"{human(view.size)} ({view.size} B)"],
        ["STATE", view.state],
        ["SHA256", view.sha256 or "-"],
        ["CREATED", when(view.created_at)],
    ]
    if view.metadata:
        rows.append(["METADATA", ", ".join(f"{k}={v}" for k, v in sorted(view.metadata.items()))])
    return Table(["FIELD", "VALUE"], rows, header=False)


def files_table(views: Sequence[FileView]) -> Table:
    rows = [[v.id, v.name, v.content_type, human(v.size), v.state, when(v.created_at)] for v in views]
    return Table(["ID", "NAME", "TYPE", "SIZE", "STATE", "CREATED"], rows)


@contextmanager
def progress_bar(label: str, show: bool | None) -> Iterator[Callable[[int, int | None], object] | None]:
    """A progress callback for the SDK: a rich bar on a terminal, plain lines on stderr
    when forced (--progress) elsewhere, nothing with --no-progress or when not a terminal."""
    terminal = sys.stderr.isatty()
    if show is False or (show is None and not terminal):
        yield None
        return
    if terminal:
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=Console(stderr=True),
            transient=True,
        ) as bar:
            task = bar.add_task(label, total=None)

            def update(done: int, total: int | None) -> None:
                bar.update(task, completed=done, total=total)

            yield update
        return
    last = [-1]

    def lines(done: int, total: int | None) -> None:
        step = done * 10 // total if total else done // (8 * 1024 * 1024)
        if step != last[0] or (total is not None and done == total):
            last[0] = step
            of = f"/{total} bytes ({done * 100 // total}%)" if total else " bytes"
            sys.stderr.write(f"{label}: {done}{of}\n")

    yield lines


@app.command()
def upload(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(metavar="PATH", help="The file to upload.", exists=True, dir_okay=False)],
    name: Annotated[str | None, typer.Option("--name", help="Its name (default: the file's).")] = None,
    bucket: Bucket = None,
    metadata: Annotated[
        list[str] | None, typer.Option("--metadata", "-m", help="KEY=VALUE metadata; repeatable.")
    ] = None,
    direct: Annotated[
        bool, typer.Option("--direct", help="Send the bytes straight to the storage (presigned), not through the api.")
    ] = False,
    owner: OwnerOpt = None,
    show: ProgressOpt = None,
) -> None:
    """Upload a file, streamed: its id, detected type, size and sha256."""
    pairs: dict[str, str] = {}
    for item in metadata or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--metadata")
        pairs[key] = value
    settings = _settings(ctx, owner)
    with settings.client() as client, progress_bar(f"uploading {path.name}", show) as progress:
        send = client.files.upload_direct if direct else client.files.upload
        view = send(path, name=name, bucket=bucket, metadata=pairs, owner=owner, progress=progress)
    emit(settings.output, view, [file_table(view)])


@app.command("list")
def list_(
    ctx: typer.Context,
    bucket: Bucket = None,
    owner: OwnerOpt = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=200, help="Files per page.")] = 50,
    cursor: Annotated[str | None, typer.Option("--cursor", help="The page after this cursor.")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every page.")] = False,
) -> None:
    """Your files (or --owner's), newest first."""
    settings = _settings(ctx, owner)
    with settings.client() as client:
        if every:
            views = list(client.files.iterate(bucket=bucket, owner=owner, page_size=limit))
            next_cursor = None
        else:
            page = client.files.list(bucket=bucket, owner=owner, limit=limit, cursor=cursor)
            views, next_cursor = page.items, page.next_cursor
    body: dict[str, Any] = {
        "items": [v.model_dump(mode="json", by_alias=True) for v in views],
        "nextCursor": next_cursor,
    }
    emit(settings.output, body, [files_table(views)])
    if next_cursor and settings.output.value == "table":
        sys.stderr.write(f"more: --cursor {next_cursor}, or --all\n")


@app.command()
def get(ctx: typer.Context, file_id: FileId, bucket: Bucket = None, owner: OwnerOpt = None) -> None:
    """One file: name, type, size, state, sha256, metadata."""
    settings = _settings(ctx, owner)
    with settings.client() as client:
        view = client.files.get(file_id, bucket=bucket, owner=owner)
    emit(settings.output, view, [file_table(view)])


TransformWidth = Annotated[int | None, typer.Option("--width", "-w", min=1, help="Image width in pixels.")]
TransformHeight = Annotated[int | None, typer.Option("--height", "-h", min=1, help="Image height in pixels.")]
TransformFit = Annotated[str | None, typer.Option("--fit", help="cover, contain, fill, inside or outside.")]
TransformGravity = Annotated[
    str | None,
    typer.Option(
        "--gravity",
        help="Where --fit cover anchors its crop: centre, north, south, east, west, northeast, northwest, "
        "southeast or southwest.",
    ),
]
TransformCrop = Annotated[
    str | None,
    typer.Option(
        "--crop", metavar="X,Y,W,H", help="The region of the original, in pixels, cut before the fit or resize."
    ),
]
TransformFormat = Annotated[str | None, typer.Option("--format", "-f", help="jpeg, png, webp or avif.")]
TransformQuality = Annotated[int | None, typer.Option("--quality", "-q", min=1, max=100, help="Encoder quality.")]
TransformPreset = Annotated[str | None, typer.Option("--preset", help="A preset of the Bucket.")]


def crop_region(text: str | None) -> tuple[int, int, int, int] | None:
    """--crop X,Y,W,H as four whole numbers (the api checks the region against the image)."""
    if text is None:
        return None
    parts = text.split(",")
    if len(parts) != 4 or not all(p.strip().isdigit() for p in parts):
        raise typer.BadParameter(f"{text!r} is not X,Y,W,H (four whole numbers)", param_hint="--crop")
    x, y, w, h = (int(p) for p in parts)
    return x, y, w, h


@app.command()
def url(
    ctx: typer.Context,
    file_id: FileId,
    expires_in: Annotated[
        int | None, typer.Option("--expires-in", min=1, help="Seconds (at most the Bucket's).")
    ] = None,
    width: TransformWidth = None,
    height: TransformHeight = None,
    fit: TransformFit = None,
    gravity: TransformGravity = None,
    crop: TransformCrop = None,
    format: TransformFormat = None,
    quality: TransformQuality = None,
    preset: TransformPreset = None,
    download: Annotated[bool, typer.Option("--download", help="Content-Disposition: attachment.")] = False,
    bucket: Bucket = None,
    owner: OwnerOpt = None,
) -> None:
    """A signed download URL (for an image variant with the transform options)."""
    region = crop_region(crop)
    settings = _settings(ctx, owner)
    with settings.client() as client:
        signed = client.files.url(
            file_id,
            expires_in=expires_in,
            width=width,
            height=height,
            fit=fit,
            gravity=gravity,
            crop=region,
            format=format,
            quality=quality,
            preset=preset,
            download=download,
            bucket=bucket,
            owner=owner,
        )
    emit(settings.output, signed, text=signed.url)


@app.command()
def download(
    ctx: typer.Context,
    file_id: FileId,
    output_path: Annotated[
        Path | None,
        typer.Option("--to", help="Where to write it (default: its name, in the current directory); - for stdout."),
    ] = None,
    width: TransformWidth = None,
    height: TransformHeight = None,
    fit: TransformFit = None,
    gravity: TransformGravity = None,
    crop: TransformCrop = None,
    format: TransformFormat = None,
    quality: TransformQuality = None,
    preset: TransformPreset = None,
    bucket: Bucket = None,
    owner: OwnerOpt = None,
    show: ProgressOpt = None,
) -> None:
    """Download a file (or an image variant), streamed; written whole or not at all."""
    region = crop_region(crop)
    settings = _settings(ctx, owner)
    transform = {
        "width": width,
        "height": height,
        "fit": fit,
        "gravity": gravity,
        "crop": region,
        "format": format,
        "quality": quality,
        "preset": preset,
    }
    given = {k: v for k, v in transform.items() if v is not None}
    with settings.client() as client:
        if output_path is None:
            output_path = Path(Path(client.files.get(file_id, bucket=bucket, owner=owner).name).name)
        to_stdout = str(output_path) == "-"
        label = f"downloading {file_id}"
        with progress_bar(label, None if not to_stdout else False if show is None else show) as progress:
            target: Any = sys.stdout.buffer if to_stdout else output_path
            size = client.files.download(file_id, target, bucket=bucket, owner=owner, progress=progress, **given)
    if to_stdout:
        return
    body = {"id": file_id, "path": str(output_path), "size": size}
    emit(settings.output, body, text=f"wrote {output_path} ({human(size)})")


@app.command()
def delete(
    ctx: typer.Context,
    file_id: FileId,
    bucket: Bucket = None,
    owner: OwnerOpt = None,
) -> None:
    """Delete a file (its variants too); its bytes leave the owner's quota."""
    settings = _settings(ctx, owner)
    with settings.client() as client:
        client.files.delete(file_id, bucket=bucket, owner=owner)
    emit(settings.output, {"id": file_id, "deleted": True}, text=f"deleted {file_id}")
