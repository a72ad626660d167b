"""Image transforms: the query parameters that ask for one (`w`, `h`, `fit`, `g`, `crop`,
`format`, `q`, or `preset`), checked against the Bucket's ImageSettings, and the rendering with Pillow.

`render` is safe on hostile input: the pixel count is read from the header and refused
over ImageSettings.maxInputPixels before anything is decoded (Pillow's own guard, which
refuses above twice Image.MAX_IMAGE_PIXELS, about 179 megapixels, stays in force too);
only the formats a browser uploads are opened (JPEG, PNG, WebP, AVIF, GIF, BMP, TIFF,
ICO: never EPS, which would run Ghostscript); the output's width and height are checked
against ImageSettings.maxOutputDimension before resizing. Only the first frame of an
animation is used, the EXIF orientation is applied, and the output carries no metadata
(EXIF, XMP, comments) but the ICC colour profile.

Fit modes, as sharp defines them (https://sharp.pixelplumbing.com/api-resize), for a box
of `w` by `h`:

- cover (default): fill the box, keeping the aspect ratio, and crop the overflow (centred,
  or anchored where the gravity `g` says: north, southeast...);
- contain: fit inside the box, keeping the aspect ratio, and pad to exactly the box
  (transparent for png, webp and avif; white for jpeg);
- fill: stretch to exactly the box, ignoring the aspect ratio;
- inside: as large as possible inside the box, keeping the aspect ratio, never enlarged
  (sharp's `inside` with `withoutEnlargement`);
- outside: as small as possible while covering the box, keeping the aspect ratio, no crop
  (one side may exceed the box).

With only `w` or only `h`, the image is scaled to it keeping its aspect ratio (and, for
`inside`, never enlarged); with neither, it keeps its size (a format or quality change).

`crop=x,y,w,h` cuts that region (in pixels of the upright image, after the EXIF
orientation) before the fit; alone, the output is the region as is.

Output format when the transform names none: the original's when it is jpeg, png, webp or
avif; otherwise (gif, bmp, tiff, ico) png for an image with transparency and jpeg for one
without, so a GIF's transparency survives and a photo stays small. When that format is not
in ImageSettings.formats, the first allowed one of png/jpeg (by transparency), then the
first of ImageSettings.formats.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import BinaryIO, Final, get_args

from PIL import Image, ImageOps

from ..resources.bucket import ALL_IMAGE_FORMATS, FitMode, Gravity, ImageFormat, ImageSettings
from .problems import ImageRefused

TRANSFORM_PARAMS: Final = ("w", "h", "fit", "g", "crop", "format", "q", "preset")
FIT_MODES: Final[tuple[FitMode, ...]] = get_args(FitMode)
GRAVITIES: Final[tuple[Gravity, ...]] = get_args(Gravity)
# ImageOps.fit's centering (0: left/top, 1: right/bottom) of each gravity.
CENTERING: Final[dict[Gravity, tuple[float, float]]] = {
    "centre": (0.5, 0.5),
    "north": (0.5, 0.0),
    "south": (0.5, 1.0),
    "east": (1.0, 0.5),
    "west": (0.0, 0.5),
    "northeast": (1.0, 0.0),
    "northwest": (0.0, 0.0),
    "southeast": (1.0, 1.0),
    "southwest": (0.0, 1.0),
}
Region = tuple[int, int, int, int]  # x, y, width, height
CONTENT_TYPES: Final[dict[ImageFormat, str]] = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "avif": "image/avif",
}
EXTENSIONS: Final[dict[ImageFormat, str]] = {"jpeg": "jpg", "png": "png", "webp": "webp", "avif": "avif"}

# Pillow's names of the formats render opens (its JPEG opener also gives MPO, the
# multi-picture JPEG of cameras), and which output format they are.
_READABLE: Final = ("JPEG", "PNG", "WEBP", "AVIF", "GIF", "BMP", "TIFF", "ICO")
_READ_NAMES: Final = "jpeg, png, webp, avif, gif, bmp, tiff, ico"
_SAME_FORMAT: Final[dict[str, ImageFormat]] = {
    "JPEG": "jpeg",
    "MPO": "jpeg",
    "PNG": "png",
    "WEBP": "webp",
    "AVIF": "avif",
}
_PILLOW_NAME: Final[dict[ImageFormat, str]] = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "avif": "AVIF"}
_ORIENTATION_TAG: Final = 0x0112
_SWAPS_SIDES: Final = frozenset({5, 6, 7, 8})
_WHITE: Final = (255, 255, 255)
_TRANSPARENT: Final = (0, 0, 0, 0)
# What Pillow raises on a file it cannot identify or decode (UnidentifiedImageError and
# "image file is truncated" are OSErrors).
_UNREADABLE: Final = (OSError, ValueError, SyntaxError, EOFError, IndexError, struct.error)


@dataclass(frozen=True)
class Transform:
    """One image variant. `format` None: the original's (see the module's doc). `crop`: the
    region (x, y, width, height) of the upright original cut before the fit."""

    width: int | None = None
    height: int | None = None
    fit: FitMode = "cover"
    format: ImageFormat | None = None
    quality: int | None = None
    gravity: Gravity = "centre"
    crop: Region | None = None

    def canonical(self) -> str:
        """gravity and crop only when not the default, so that the variants stored before
        they existed keep their digests."""

        def part(value: object) -> str:
            return "" if value is None else str(value)

        text = (
            f"v1;w={part(self.width)};h={part(self.height)};fit={self.fit};"
            f"format={part(self.format)};q={part(self.quality)}"
        )
        if self.gravity != "centre":
            text += f";g={self.gravity}"
        if self.crop is not None:
            text += f";crop={','.join(map(str, self.crop))}"
        return text

    @property
    def digest(self) -> str:
        """First 16 hex of the sha256 of the canonical form: the variant's name in storage."""
        return hashlib.sha256(self.canonical().encode()).hexdigest()[:16]

    def params(self) -> dict[str, str]:
        """The query parameters that ask for this transform."""
        given = {"w": self.width, "h": self.height, "fit": self.fit, "format": self.format, "q": self.quality}
        params = {k: str(v) for k, v in given.items() if v is not None}
        if self.gravity != "centre":
            params["g"] = self.gravity
        if self.crop is not None:
            params["crop"] = ",".join(map(str, self.crop))
        return params


@dataclass(frozen=True)
class Rendered:
    data: bytes
    content_type: str
    width: int
    height: int
    format: ImageFormat

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.format]


# -- parameters --------------------------------------------------------------------------------


def parse_transform(query: Mapping[str, str], settings: ImageSettings) -> Transform | None:
    """The transform a query asks for (other parameters are ignored); None when it names
    none. ImageRefused for a bad value, a limit passed, an unknown preset, or a preset
    combined with explicit parameters. The quality is always resolved (the Bucket's
    default when none is given), so a changed default makes new variants."""
    given = {k: query[k] for k in TRANSFORM_PARAMS if k in query}
    if not given:
        return None
    if not settings.enabled:
        raise ImageRefused("image transforms are turned off for this Bucket")
    if "preset" in given:
        if len(given) > 1:
            others = ", ".join(sorted(set(given) - {"preset"}))
            raise ImageRefused(f"preset cannot be combined with other transform parameters ({others})")
        name = given["preset"]
        preset = settings.presets.get(name)
        if preset is None:
            known = ", ".join(sorted(settings.presets)) or "none"
            raise ImageRefused(f"no preset {name[:63]!r} on this Bucket (presets: {known})")
        transform = Transform(
            preset.width, preset.height, preset.fit, preset.format, preset.quality, gravity=preset.gravity
        )
    else:
        transform = Transform(
            width=_integer(given, "w", 1, 16384),
            height=_integer(given, "h", 1, 16384),
            fit=_fit_mode(given.get("fit", "cover")),
            format=_format(given.get("format")),
            quality=_integer(given, "q", 1, 100),
            gravity=_gravity(given.get("g", "centre")),
            crop=_region(given.get("crop")),
        )
    if "g" in given or transform.gravity != "centre":
        if transform.fit != "cover":
            raise ImageRefused(f"g (gravity) anchors the crop of fit=cover; it does not apply to fit={transform.fit}")
        if transform.width is None or transform.height is None:
            raise ImageRefused("g (gravity) anchors the crop of fit=cover, which needs both w and h")
    limit = settings.max_output_dimension
    for name, value in (("width", transform.width), ("height", transform.height)):
        if value is not None and value > limit:
            raise ImageRefused(f"{name} {value} is over this Bucket's limit of {limit} pixels")
    if transform.format is not None and transform.format not in settings.formats:
        allowed = ", ".join(settings.formats)
        raise ImageRefused(f"format {transform.format} is not allowed on this Bucket (allowed: {allowed})")
    if transform.quality is None:
        transform = dataclasses.replace(transform, quality=settings.default_quality)
    return transform


def _integer(given: Mapping[str, str], name: str, low: int, high: int) -> int | None:
    text = given.get(name)
    if text is None:
        return None
    if not (text.isascii() and text.isdigit() and len(text) <= 6) or not low <= int(text) <= high:
        raise ImageRefused(f"{name} must be a whole number from {low} to {high}")
    return int(text)


def _fit_mode(text: str) -> FitMode:
    for mode in FIT_MODES:
        if text == mode:
            return mode
    raise ImageRefused(f"fit must be one of {', '.join(FIT_MODES)}")


def _gravity(text: str) -> Gravity:
    for gravity in GRAVITIES:
        if text == gravity:
            return gravity
    raise ImageRefused(f"g (gravity) must be one of {', '.join(GRAVITIES)}")


def _region(text: str | None) -> Region | None:
    if text is None:
        return None
    parts = text.split(",")
    if len(parts) != 4 or not all(p.isascii() and p.isdigit() and len(p) <= 6 for p in parts):
        raise ImageRefused("crop must be x,y,w,h: four whole numbers (pixels), e.g. crop=10,20,300,200")
    x, y, width, height = (int(p) for p in parts)
    if width == 0 or height == 0:
        raise ImageRefused(f"crop {text} is empty: its width and height must be at least 1")
    return x, y, width, height


def _format(text: str | None) -> ImageFormat | None:
    if text is None:
        return None
    for name in ALL_IMAGE_FORMATS:
        if text == name:
            return name
    raise ImageRefused(f"format must be one of {', '.join(ALL_IMAGE_FORMATS)}")


# -- geometry ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """How a source of a given size becomes the output: scaled to `scaled`, then cropped
    (cover) or padded (contain) to `size`, or left as is."""

    scaled: tuple[int, int]
    size: tuple[int, int]
    step: str  # "resize" | "crop" | "pad" | "none"


def plan(source: tuple[int, int], transform: Transform) -> Plan:
    """The output geometry of `transform` on an (oriented) image of `source` size."""
    w, h = source
    box_w, box_h = transform.width, transform.height
    if box_w is None and box_h is None:
        return Plan(source, source, "none")
    if box_h is None:  # only a width: the height follows
        assert box_w is not None
        out_w = min(box_w, w) if transform.fit == "inside" else box_w
        scaled = (out_w, max(1, round(h * out_w / w)))
        return Plan(scaled, scaled, "resize")
    if box_w is None:  # only a height: the width follows
        out_h = min(box_h, h) if transform.fit == "inside" else box_h
        scaled = (max(1, round(w * out_h / h)), out_h)
        return Plan(scaled, scaled, "resize")
    box = (box_w, box_h)
    if transform.fit == "fill":
        return Plan(box, box, "resize")
    if transform.fit == "cover":
        return Plan(_scaled(w, h, max(box_w / w, box_h / h)), box, "crop")
    if transform.fit == "contain":
        return Plan(_scaled(w, h, min(box_w / w, box_h / h)), box, "pad")
    if transform.fit == "inside":
        scaled = _scaled(w, h, min(box_w / w, box_h / h, 1.0))
        return Plan(scaled, scaled, "resize")
    scaled = _scaled(w, h, max(box_w / w, box_h / h))  # outside
    return Plan(scaled, scaled, "resize")


def _scaled(w: int, h: int, scale: float) -> tuple[int, int]:
    return max(1, round(w * scale)), max(1, round(h * scale))


# -- rendering ---------------------------------------------------------------------------------


def render(source: BinaryIO, transform: Transform, settings: ImageSettings) -> Rendered:
    """The variant of the image read from `source` (from its current position). Blocking
    and CPU-bound: run it in a thread. ImageRefused when `source` is not an image this
    server reads, has too many pixels, or the result would pass the Bucket's limits."""
    try:
        image = Image.open(source, formats=_READABLE)
    except Image.DecompressionBombError as error:
        raise ImageRefused(f"the image has too many pixels to be decoded safely: {error}") from None
    except _UNREADABLE:
        raise ImageRefused(
            "the file is not an image this server can read (jpeg, png, webp, avif, gif, bmp, tiff, ico)"
        ) from None
    with image:
        width, height = image.size
        if width * height > settings.max_input_pixels:
            raise ImageRefused(
                f"the image is {width}x{height} ({width * height} pixels), over this Bucket's limit of "
                f"{settings.max_input_pixels} pixels; refused before decoding (decompression bomb guard)"
            )
        try:
            return _render(image, transform, settings)
        except Image.DecompressionBombError as error:
            raise ImageRefused(f"the image has too many pixels to be decoded safely: {error}") from None
        except _UNREADABLE:
            raise ImageRefused("the image could not be decoded (truncated or damaged)") from None


def _render(image: Image.Image, transform: Transform, settings: ImageSettings) -> Rendered:
    transparent = image.has_transparency_data
    output = transform.format or default_format(image.format, transparent, settings)
    if output not in settings.formats:
        raise ImageRefused(f"format {output} is not allowed on this Bucket (allowed: {', '.join(settings.formats)})")
    swapped = image.getexif().get(_ORIENTATION_TAG, 1) in _SWAPS_SIDES
    width, height = image.size
    upright = (height, width) if swapped else (width, height)
    region = transform.crop
    if region is not None:  # checked on the header's size, before decoding
        x, y, crop_w, crop_h = region
        if x + crop_w > upright[0] or y + crop_h > upright[1]:
            raise ImageRefused(
                f"crop {x},{y},{crop_w},{crop_h} is not inside the image, which is {upright[0]}x{upright[1]} "
                "(upright, after its EXIF orientation)"
            )
    geometry = plan(upright if region is None else region[2:], transform)
    limit = settings.max_output_dimension
    if max(geometry.size) > limit or max(geometry.scaled) > limit:
        out_w, out_h = geometry.size if max(geometry.size) > limit else geometry.scaled
        raise ImageRefused(f"the result would be {out_w}x{out_h} pixels, over this Bucket's limit of {limit}")
    if image.format in ("JPEG", "MPO") and geometry.step != "none" and region is None:
        # Decode at a reduced scale (1/2, 1/4, 1/8) when that still covers the output (not
        # with a crop, whose pixels are the full-size image's).
        need = geometry.scaled
        image.draft(None, (need[1], need[0]) if swapped else need)
    image.seek(0)
    image.load()
    icc_profile = image.info.get("icc_profile")
    oriented = ImageOps.exif_transpose(image)
    if region is not None:
        x, y, crop_w, crop_h = region
        oriented = oriented.crop((x, y, x + crop_w, y + crop_h))
    # Padding is transparent where the format has an alpha channel.
    alpha = transparent or (geometry.step == "pad" and output != "jpeg")
    picture = oriented.convert("RGBA" if alpha else "RGB")
    if alpha and output == "jpeg":  # no alpha in jpeg: flattened on white
        flat = Image.new("RGB", picture.size, _WHITE)
        flat.paste(picture, mask=picture.getchannel("A"))
        picture = flat
    picture = _reshape(picture, geometry, transform.gravity)
    picture.info = {}  # no EXIF, XMP or comment is written
    quality = transform.quality or settings.default_quality
    buffer = io.BytesIO()
    options: dict[str, object] = {}
    if isinstance(icc_profile, bytes) and icc_profile:
        options["icc_profile"] = icc_profile
    if output == "jpeg":
        options |= {"quality": quality, "optimize": True, "progressive": True}
    elif output in ("webp", "avif"):
        options |= {"quality": quality}
    picture.save(buffer, _PILLOW_NAME[output], **options)
    return Rendered(buffer.getvalue(), CONTENT_TYPES[output], picture.width, picture.height, output)


def _reshape(picture: Image.Image, geometry: Plan, gravity: Gravity = "centre") -> Image.Image:
    resample = Image.Resampling.LANCZOS
    if geometry.step == "none":
        return picture
    if geometry.step == "crop":
        return ImageOps.fit(picture, geometry.size, method=resample, centering=CENTERING[gravity])
    if geometry.step == "pad":
        canvas = Image.new(picture.mode, geometry.size, _TRANSPARENT if picture.mode == "RGBA" else _WHITE)
        inner = picture.resize(geometry.scaled, resample, reducing_gap=3.0)
        left = (geometry.size[0] - inner.width) // 2
        top = (geometry.size[1] - inner.height) // 2
        canvas.paste(inner, (left, top))
        return canvas
    return picture.resize(geometry.scaled, resample, reducing_gap=3.0)


def default_format(pillow_format: str | None, transparent: bool, settings: ImageSettings) -> ImageFormat:
    """The output format of a transform that names none (see the module's doc)."""
    preferred = _SAME_FORMAT.get(pillow_format or "") or ("png" if transparent else "jpeg")
    if preferred in settings.formats:
        return preferred
    fallback: ImageFormat = "png" if transparent else "jpeg"
    if fallback in settings.formats:
        return fallback
    return settings.formats[0]
