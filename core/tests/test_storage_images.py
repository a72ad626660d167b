"""Image transforms: the parameters, the geometry of each fit mode, the formats (decoded
back with Pillow), EXIF orientation, metadata stripping, and the refusals (decompression
bombs without decoding, not an image, limits). Every image is made here with Pillow."""

from __future__ import annotations

import dataclasses
import io
import struct
import time
import tracemalloc
import zlib

import pytest
from PIL import Image
from stackyard.resources.bucket import ImageSettings, ImageTransform
from stackyard.storage.images import Rendered, Transform, parse_transform, plan, render
from stackyard.storage.problems import ImageRefused

SETTINGS = ImageSettings(
    presets={
        "thumb": ImageTransform(width=64, height=64, fit="cover", format="webp", quality=70),
        "wide": ImageTransform(width=200),
    }
)


def image_bytes(
    size: tuple[int, int] = (400, 200), fmt: str = "PNG", mode: str = "RGB", color: object = "red", **options: object
) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, fmt, **options)  # type: ignore[arg-type]
    return buffer.getvalue()


def rendered(data: bytes, transform: Transform, settings: ImageSettings = SETTINGS) -> tuple[Rendered, Image.Image]:
    result = render(io.BytesIO(data), transform, settings)
    decoded = Image.open(io.BytesIO(result.data))
    decoded.load()
    assert decoded.size == (result.width, result.height)
    return result, decoded


# -- parameters --------------------------------------------------------------------------------


def test_no_transform_parameters_is_no_transform() -> None:
    assert parse_transform({}, SETTINGS) is None
    assert parse_transform({"bucket": "avatars", "download": "1", "exp": "1", "sig": "x"}, SETTINGS) is None


def test_parameters_are_parsed_and_quality_defaults_to_the_buckets() -> None:
    transform = parse_transform({"w": "300", "h": "200", "fit": "contain", "format": "avif", "other": "x"}, SETTINGS)
    assert transform == Transform(width=300, height=200, fit="contain", format="avif", quality=80)
    assert parse_transform({"format": "png"}, SETTINGS) == Transform(format="png", quality=80)
    assert parse_transform({"w": "10", "q": "35"}, SETTINGS) == Transform(width=10, quality=35)


def test_params_describe_the_transform() -> None:
    transform = Transform(width=120, height=None, fit="inside", format="webp", quality=60)
    assert transform.params() == {"w": "120", "fit": "inside", "format": "webp", "q": "60"}
    assert parse_transform(transform.params(), SETTINGS) == transform


def test_digest_is_16_hex_stable_and_differs_per_field() -> None:
    base = Transform(width=100, height=100, fit="cover", format="png", quality=80)
    assert len(base.digest) == 16 and int(base.digest, 16) >= 0
    assert base.digest == Transform(width=100, height=100, fit="cover", format="png", quality=80).digest
    others = [
        Transform(width=101, height=100, fit="cover", format="png", quality=80),
        Transform(width=100, height=None, fit="cover", format="png", quality=80),
        Transform(width=100, height=100, fit="contain", format="png", quality=80),
        Transform(width=100, height=100, fit="cover", format="webp", quality=80),
        Transform(width=100, height=100, fit="cover", format=None, quality=80),
        Transform(width=100, height=100, fit="cover", format="png", quality=81),
        Transform(width=100, height=1, fit="cover", format="png", quality=80),
    ]
    assert len({base.digest, *(t.digest for t in others)}) == len(others) + 1


def test_digests_of_transforms_without_gravity_or_crop_are_unchanged() -> None:
    # Computed before g and crop existed: the variants already stored keep their names.
    assert Transform(width=100, height=100, fit="cover", format="png", quality=80).digest == "0c770f5551ddb5b3"
    assert Transform(width=200, quality=80).digest == "7dee2b4dee9159a6"
    assert Transform(64, 64, "contain", "webp", 70).digest == "1e92ca83ba97cab4"
    assert Transform(width=200, quality=80, gravity="centre").digest == "7dee2b4dee9159a6"


def test_gravity_and_crop_change_the_digest_and_round_trip_as_parameters() -> None:
    base = Transform(width=100, height=100, fit="cover", format="png", quality=80)
    north = dataclasses.replace(base, gravity="north")
    cropped = dataclasses.replace(base, crop=(1, 2, 30, 40))
    assert len({base.digest, north.digest, cropped.digest}) == 3
    assert north.canonical().endswith(";g=north") and cropped.canonical().endswith(";crop=1,2,30,40")
    assert cropped.params()["crop"] == "1,2,30,40" and "g" not in cropped.params()
    for transform in (north, cropped, dataclasses.replace(north, crop=(0, 0, 5, 5))):
        assert parse_transform(transform.params(), SETTINGS) == transform


def test_presets_resolve_and_take_the_default_quality_when_they_name_none() -> None:
    assert parse_transform({"preset": "thumb"}, SETTINGS) == Transform(64, 64, "cover", "webp", 70)
    assert parse_transform({"preset": "wide", "bucket": "b"}, SETTINGS) == Transform(200, None, "cover", None, 80)


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ({"w": "abc"}, "w must be a whole number"),
        ({"w": "0"}, "w must be a whole number"),
        ({"h": "-5"}, "h must be a whole number"),
        ({"w": "1.5"}, "w must be a whole number"),
        ({"w": "\uff11\uff12"}, "w must be a whole number"),  # fullwidth digits
        ({"q": "101"}, "q must be a whole number from 1 to 100"),
        ({"w": "5000"}, "width 5000 is over this Bucket's limit of 4096"),
        ({"h": "99999999"}, "h must be a whole number"),
        ({"fit": "stretch"}, "fit must be one of cover, contain, fill, inside, outside"),
        ({"format": "gif"}, "format must be one of jpeg, png, webp, avif"),
        ({"preset": "huge"}, "no preset 'huge' on this Bucket (presets: thumb, wide)"),
        ({"preset": "thumb", "w": "10"}, "preset cannot be combined with other transform parameters (w)"),
        ({"g": "up", "w": "10", "h": "10"}, "g (gravity) must be one of centre, north, south, east, west, northeast"),
        ({"g": "north", "w": "10", "h": "10", "fit": "contain"}, "does not apply to fit=contain"),
        ({"g": "centre", "w": "10", "h": "10", "fit": "inside"}, "does not apply to fit=inside"),
        ({"g": "north", "w": "10"}, "needs both w and h"),
        ({"crop": "1,2,3"}, "crop must be x,y,w,h"),
        ({"crop": "1,2,3,x"}, "crop must be x,y,w,h"),
        ({"crop": "-1,2,3,4"}, "crop must be x,y,w,h"),
        ({"crop": "0,0,0,10"}, "crop 0,0,0,10 is empty"),
        ({"crop": "1,1,1234567,1"}, "crop must be x,y,w,h"),
        ({"preset": "thumb", "crop": "0,0,5,5"}, "preset cannot be combined with other transform parameters (crop)"),
    ],
)
def test_bad_parameters_are_refused_with_a_clear_detail(query: dict[str, str], detail: str) -> None:
    with pytest.raises(ImageRefused) as refused:
        parse_transform(query, SETTINGS)
    assert detail in refused.value.detail


def test_format_not_allowed_by_the_bucket_is_refused_also_in_a_preset() -> None:
    settings = ImageSettings(formats=["jpeg", "webp"], presets={"p": ImageTransform(width=10, format="png")})
    with pytest.raises(ImageRefused, match="format png is not allowed on this Bucket"):
        parse_transform({"format": "png"}, settings)
    with pytest.raises(ImageRefused, match="format png is not allowed"):
        parse_transform({"preset": "p"}, settings)


def test_preset_over_the_dimension_limit_is_refused() -> None:
    settings = ImageSettings(max_output_dimension=100, presets={"big": ImageTransform(width=500)})
    with pytest.raises(ImageRefused, match="width 500 is over this Bucket's limit of 100"):
        parse_transform({"preset": "big"}, settings)


def test_transforms_turned_off_refuse_any_transform() -> None:
    settings = ImageSettings(enabled=False)
    assert parse_transform({"download": "1"}, settings) is None
    with pytest.raises(ImageRefused, match="turned off"):
        parse_transform({"w": "10"}, settings)


# -- geometry ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("box", "fit", "expected"),
    [
        ((100, 100), "cover", (100, 100)),
        ((100, 100), "contain", (100, 100)),
        ((100, 100), "fill", (100, 100)),
        ((100, 100), "inside", (100, 50)),
        ((100, 100), "outside", (200, 100)),
        ((1000, 1000), "cover", (1000, 1000)),
        ((1000, 1000), "inside", (400, 200)),
        ((1000, 1000), "outside", (2000, 1000)),
        ((100, None), "cover", (100, 50)),
        ((None, 50), "fill", (100, 50)),
        ((800, None), "inside", (400, 200)),
        ((800, None), "outside", (800, 400)),
        ((None, None), "cover", (400, 200)),
    ],
)
def test_output_dimensions_per_fit_mode(
    box: tuple[int | None, int | None], fit: str, expected: tuple[int, int]
) -> None:
    transform = Transform(width=box[0], height=box[1], fit=fit, format="png")  # type: ignore[arg-type]
    result, decoded = rendered(image_bytes((400, 200)), transform)
    assert (result.width, result.height) == expected
    assert decoded.size == expected


def test_cover_crops_the_centre() -> None:
    # Left quarter blue, middle half red, right quarter green: cover to a square keeps the red.
    source = Image.new("RGB", (400, 200), "red")
    source.paste((0, 0, 255), (0, 0, 100, 200))
    source.paste((0, 255, 0), (300, 0, 400, 200))
    buffer = io.BytesIO()
    source.save(buffer, "PNG")
    _, decoded = rendered(buffer.getvalue(), Transform(width=100, height=100, fit="cover", format="png"))
    for x in (2, 50, 97):
        red, green, blue = decoded.getpixel((x, 50))  # type: ignore[misc]
        assert red > 240 and green < 15 and blue < 15


def halves(size: tuple[int, int] = (400, 200)) -> bytes:
    """Left half red, right half blue."""
    source = Image.new("RGB", size, (255, 0, 0))
    source.paste((0, 0, 255), (size[0] // 2, 0, size[0], size[1]))
    buffer = io.BytesIO()
    source.save(buffer, "PNG")
    return buffer.getvalue()


def colour(image: Image.Image, xy: tuple[int, int]) -> str:
    red, green, blue = image.getpixel(xy)[:3]  # type: ignore[index]
    if red > 240 and green < 15 and blue < 15:
        return "red"
    if blue > 240 and red < 15 and green < 15:
        return "blue"
    return f"{red},{green},{blue}"


@pytest.mark.parametrize(
    ("gravity", "expected"),
    [("west", "red"), ("northwest", "red"), ("southwest", "red"), ("east", "blue"), ("southeast", "blue")],
)
def test_gravity_anchors_the_cover_crop(gravity: str, expected: str) -> None:
    transform = parse_transform({"w": "100", "h": "100", "g": gravity, "format": "png"}, SETTINGS)
    assert transform is not None
    _, decoded = rendered(halves(), transform)
    assert decoded.size == (100, 100)
    assert {colour(decoded, (x, y)) for x in (1, 50, 98) for y in (1, 50, 98)} == {expected}


def test_gravity_north_and_south_on_a_tall_image() -> None:
    source = Image.new("RGB", (100, 300), (255, 0, 0))
    source.paste((0, 0, 255), (0, 150, 100, 300))
    buffer = io.BytesIO()
    source.save(buffer, "PNG")
    for gravity, expected in (("north", "red"), ("south", "blue")):
        _, decoded = rendered(buffer.getvalue(), Transform(width=50, height=50, format="png", gravity=gravity))  # type: ignore[arg-type]
        assert {colour(decoded, (x, y)) for x in (1, 25, 48) for y in (1, 25, 48)} == {expected}


def test_a_preset_may_carry_a_gravity_only_with_cover_and_a_box() -> None:
    settings = ImageSettings(presets={"left": ImageTransform(width=50, height=50, gravity="west", format="png")})
    transform = parse_transform({"preset": "left"}, settings)
    assert transform == Transform(50, 50, "cover", "png", 80, gravity="west")
    _, decoded = rendered(halves(), transform, settings)
    assert colour(decoded, (48, 25)) == "red"
    for bad in ({"width": 50, "height": 50, "fit": "contain", "gravity": "north"}, {"width": 50, "gravity": "east"}):
        with pytest.raises(ValueError, match="gravity anchors the crop of fit cover"):
            ImageTransform.model_validate(bad)


def test_crop_alone_outputs_the_region_as_is() -> None:
    # Red left half, blue right half: a region across the border keeps both, pixel for pixel.
    result, decoded = rendered(halves(), parse_transform({"crop": "190,50,20,30", "format": "png"}, SETTINGS))  # type: ignore[arg-type]
    assert (result.width, result.height) == (20, 30)
    assert [colour(decoded, (x, 10)) for x in (0, 9, 10, 19)] == ["red", "red", "blue", "blue"]
    _, blue = rendered(halves(), Transform(format="png", crop=(300, 0, 100, 200)))
    assert blue.size == (100, 200) and {colour(blue, (x, y)) for x in (0, 99) for y in (0, 199)} == {"blue"}


def test_crop_comes_before_the_fit() -> None:
    # The red half alone, covered to a square: all red, whatever the gravity.
    transform = Transform(width=40, height=40, format="png", gravity="east", crop=(0, 0, 200, 200))
    _, decoded = rendered(halves(), transform)
    assert decoded.size == (40, 40) and {colour(decoded, (x, y)) for x in (0, 39) for y in (0, 39)} == {"red"}
    _, inside = rendered(halves(), Transform(width=50, fit="inside", format="png", crop=(100, 0, 200, 100)))
    assert inside.size == (50, 25)
    assert colour(inside, (5, 12)) == "red" and colour(inside, (44, 12)) == "blue"


def test_crop_is_in_the_upright_images_pixels() -> None:
    # rotated_photo is shown 20x40, red on top and blue below: its lower half is blue.
    _, decoded = rendered(rotated_photo(), Transform(format="png", crop=(0, 25, 20, 15)))
    assert decoded.size == (20, 15)
    red, _, blue = decoded.getpixel((10, 7))  # type: ignore[misc]
    assert blue > 200 and red < 50
    with pytest.raises(ImageRefused, match="which is 20x40"):
        render(io.BytesIO(rotated_photo()), Transform(crop=(0, 0, 40, 20)), SETTINGS)


@pytest.mark.parametrize("region", [(0, 0, 401, 200), (390, 0, 20, 10), (0, 150, 10, 51), (400, 0, 1, 1)])
def test_crop_outside_the_image_is_refused_with_its_size(region: tuple[int, int, int, int]) -> None:
    with pytest.raises(ImageRefused) as refused:
        render(io.BytesIO(halves()), Transform(crop=region), SETTINGS)
    assert refused.value.detail == (
        f"crop {','.join(map(str, region))} is not inside the image, which is 400x200 "
        "(upright, after its EXIF orientation)"
    )


def test_crop_of_a_bomb_is_refused_before_decoding() -> None:
    with pytest.raises(ImageRefused, match="over this Bucket's limit"):
        render(io.BytesIO(bomb_png(8_000, 8_000)), Transform(crop=(0, 0, 10, 10)), SETTINGS)


def test_contain_pads_transparent_for_png_and_white_for_jpeg() -> None:
    data = image_bytes((400, 200), color="red")
    _, png = rendered(data, Transform(width=100, height=100, fit="contain", format="png"))
    assert png.mode == "RGBA"
    assert png.getpixel((50, 5)) == (0, 0, 0, 0)  # padding above
    assert png.getpixel((50, 50)) == (255, 0, 0, 255)
    _, jpeg = rendered(data, Transform(width=100, height=100, fit="contain", format="jpeg"))
    assert jpeg.mode == "RGB"
    assert all(channel > 245 for channel in jpeg.getpixel((50, 5)))  # type: ignore[union-attr]
    red, green, blue = jpeg.getpixel((50, 50))  # type: ignore[misc]
    assert red > 230 and green < 30 and blue < 30


def test_plan_keeps_at_least_one_pixel() -> None:
    assert plan((10_000, 1), Transform(width=10)).size == (10, 1)
    assert plan((1, 10_000), Transform(height=10, fit="inside")).size == (1, 10)


# -- formats -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "content_type", "pillow_name"),
    [
        ("jpeg", "image/jpeg", "JPEG"),
        ("png", "image/png", "PNG"),
        ("webp", "image/webp", "WEBP"),
        ("avif", "image/avif", "AVIF"),
    ],
)
def test_every_output_format_decodes_back(fmt: str, content_type: str, pillow_name: str) -> None:
    transform = Transform(width=120, height=80, fit="cover", format=fmt, quality=70)  # type: ignore[arg-type]
    result, decoded = rendered(image_bytes((300, 300), "JPEG"), transform)
    assert result.content_type == content_type
    assert result.extension == ("jpg" if fmt == "jpeg" else fmt)
    assert decoded.format == pillow_name
    assert decoded.size == (120, 80)


def test_quality_changes_the_lossy_output() -> None:
    noisy = Image.effect_noise((256, 256), 64).convert("RGB")
    buffer = io.BytesIO()
    noisy.save(buffer, "PNG")
    low = render(io.BytesIO(buffer.getvalue()), Transform(format="jpeg", quality=10), SETTINGS)
    high = render(io.BytesIO(buffer.getvalue()), Transform(format="jpeg", quality=95), SETTINGS)
    assert len(low.data) < len(high.data)


@pytest.mark.parametrize(
    ("fmt", "mode", "color", "expected"),
    [
        ("JPEG", "RGB", "red", "jpeg"),
        ("PNG", "RGBA", (255, 0, 0, 128), "png"),
        ("WEBP", "RGB", "red", "webp"),
        ("AVIF", "RGB", "red", "avif"),
        ("GIF", "RGB", "red", "jpeg"),
        ("BMP", "RGB", "red", "jpeg"),
        ("TIFF", "RGBA", (0, 0, 255, 0), "png"),
    ],
)
def test_format_defaults_to_the_originals_or_png_jpeg_for_others(
    fmt: str, mode: str, color: object, expected: str
) -> None:
    result = render(io.BytesIO(image_bytes((40, 40), fmt, mode, color)), Transform(width=20), SETTINGS)
    assert result.format == expected and (result.width, result.height) == (20, 20)


def test_transparent_gif_keeps_its_transparency_as_png() -> None:
    frame = Image.new("P", (20, 20), 0)
    frame.putpalette([255, 255, 255, 255, 0, 0] + [0] * 762)
    frame.paste(1, (5, 5, 15, 15))
    buffer = io.BytesIO()
    frame.save(buffer, "GIF", transparency=0)
    result, decoded = rendered(buffer.getvalue(), Transform(quality=80))
    assert result.format == "png"
    assert decoded.convert("RGBA").getpixel((0, 0))[3] == 0  # type: ignore[index]
    assert decoded.convert("RGBA").getpixel((10, 10)) == (255, 0, 0, 255)


def test_default_format_follows_the_buckets_formats() -> None:
    settings = ImageSettings(formats=["webp"])
    result = render(io.BytesIO(image_bytes((40, 40), "PNG")), Transform(width=20), settings)
    assert result.format == "webp"


def test_rgba_to_jpeg_is_flattened_on_white() -> None:
    source = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    source.paste((0, 0, 255, 255), (0, 0, 20, 40))
    buffer = io.BytesIO()
    source.save(buffer, "PNG")
    _, decoded = rendered(buffer.getvalue(), Transform(format="jpeg", quality=95))
    assert decoded.mode == "RGB"
    assert all(channel > 245 for channel in decoded.getpixel((35, 20)))  # type: ignore[union-attr]
    red, green, blue = decoded.getpixel((5, 20))  # type: ignore[misc]
    assert blue > 230 and red < 30 and green < 30


# -- orientation, animation, metadata ----------------------------------------------------------


def rotated_photo() -> bytes:
    """40x20 stored pixels, red left and blue right, with EXIF orientation 6 (shown turned
    90 degrees clockwise: 20x40, red on top, blue below) and other metadata."""
    stored = Image.new("RGB", (40, 20), (255, 0, 0))
    stored.paste((0, 0, 255), (20, 0, 40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "Camera Maker"  # Make
    exif[0x8825] = {2: (48.0, 51.0, 24.0)}  # GPS IFD: latitude
    buffer = io.BytesIO()
    stored.save(buffer, "JPEG", exif=exif, quality=95, comment=b"secret location")
    return buffer.getvalue()


def test_exif_rotated_photo_comes_out_upright() -> None:
    _, decoded = rendered(rotated_photo(), Transform(format="png"))
    assert decoded.size == (20, 40)
    top_r, _, top_b = decoded.getpixel((10, 5))  # type: ignore[misc]
    bottom_r, _, bottom_b = decoded.getpixel((10, 35))  # type: ignore[misc]
    assert top_r > 200 and top_b < 50
    assert bottom_b > 200 and bottom_r < 50


def test_exif_rotation_applies_before_the_fit() -> None:
    _, decoded = rendered(rotated_photo(), Transform(width=10, fit="inside", format="png"))
    assert decoded.size == (10, 20)


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "avif"])
def test_metadata_is_stripped(fmt: str) -> None:
    result, decoded = rendered(rotated_photo(), Transform(width=10, format=fmt))  # type: ignore[arg-type]
    assert len(decoded.getexif()) == 0
    assert "exif" not in decoded.info and "comment" not in decoded.info and "xmp" not in decoded.info
    assert b"Camera Maker" not in result.data and b"secret location" not in result.data


def test_icc_profile_is_kept() -> None:
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = image_bytes((40, 40), "JPEG", icc_profile=profile)
    _, decoded = rendered(data, Transform(width=20, format="png"))
    assert decoded.info.get("icc_profile") == profile


def test_animation_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (30, 30), color) for color in ("red", "lime", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    for fmt in ("png", "webp"):
        _, decoded = rendered(buffer.getvalue(), Transform(width=15, format=fmt))  # type: ignore[arg-type]
        assert getattr(decoded, "n_frames", 1) == 1
        red, green, blue = decoded.convert("RGB").getpixel((7, 7))  # type: ignore[misc]
        assert red > 230 and green < 30 and blue < 30


# -- refusals ----------------------------------------------------------------------------------


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header claiming width x height (8-bit RGB) with a tiny IDAT: decoding
    it would allocate width * height * 3 bytes."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + png_chunk(b"IEND", b"")
    )


def test_decompression_bomb_is_refused_from_its_header_without_allocating() -> None:
    data = bomb_png(100_000, 100_000)
    assert len(data) < 200
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(ImageRefused) as refused:
            render(io.BytesIO(data), Transform(width=100, format="png"), ImageSettings())
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "10000000000" in refused.value.detail
    assert elapsed < 1.0
    assert peak < 5 * 1024 * 1024


def test_image_over_the_buckets_pixel_limit_is_refused_with_its_numbers() -> None:
    settings = ImageSettings(max_input_pixels=10_000)
    assert render(io.BytesIO(image_bytes((100, 100))), Transform(width=10), settings).width == 10
    with pytest.raises(ImageRefused) as refused:
        render(io.BytesIO(bomb_png(101, 100)), Transform(width=10), settings)
    detail = refused.value.detail
    assert "101x100" in detail and "10100 pixels" in detail and "10000" in detail and "decompression bomb" in detail


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"just some text, not a picture\n", id="text"),
        pytest.param(b'<svg xmlns="http://www.w3.org/2000/svg"><rect width="5" height="5"/></svg>', id="svg"),
        pytest.param(b"%PDF-1.4\n%%EOF\n", id="pdf"),
        pytest.param(b"", id="empty"),
        pytest.param(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", id="eps-never-opened"),
    ],
)
def test_not_an_image_is_refused(data: bytes) -> None:
    with pytest.raises(ImageRefused, match="not an image"):
        render(io.BytesIO(data), Transform(width=10), SETTINGS)


def test_truncated_image_is_refused() -> None:
    noisy = Image.effect_noise((300, 300), 80).convert("RGB")
    buffer = io.BytesIO()
    noisy.save(buffer, "PNG")
    data = buffer.getvalue()
    with pytest.raises(ImageRefused, match="could not be decoded"):
        render(io.BytesIO(data[: len(data) // 2]), Transform(width=10), SETTINGS)


@pytest.mark.parametrize(
    ("size", "transform"),
    [
        ((4000, 10), Transform(width=100, height=100, fit="outside")),
        ((10, 4000), Transform(width=2000)),
    ],
)
def test_result_over_the_dimension_limit_is_refused(size: tuple[int, int], transform: Transform) -> None:
    with pytest.raises(ImageRefused, match="over this Bucket's limit of 4096"):
        render(io.BytesIO(image_bytes(size)), transform, SETTINGS)
