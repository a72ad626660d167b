"""/oauth2/ui/theme.css, made from the Stack's `spec.auth.hostedPages`, and the static files.

The theme is a handful of CSS custom properties that static/hosted.css uses: the primary
colour and a text colour on it chosen for contrast (WCAG 2 relative luminance: white or near
black, whichever contrasts more), a link colour darkened or lightened until it reaches 4.5:1
on the background, the background and text colours, and the colour scheme (light, dark, or
the visitor's preference with `prefers-color-scheme`)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from fastapi import APIRouter, Request
from stackyard.resources.stack import HostedPagesSettings
from starlette.responses import FileResponse, Response

from .render import HostedRoute, error_page, hosted_settings

router = APIRouter(route_class=HostedRoute)

STATIC_DIR = Path(__file__).parent / "static"
_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml", ".png": "image/png"}

LIGHT_TEXT = "#0f172a"
DARK_BACKGROUND = "#0f172a"
DARK_TEXT = "#e2e8f0"
NEAR_BLACK = "#111827"
TEXT_CONTRAST = 4.5


def _rgb(color: str) -> tuple[int, int, int]:
    value = color.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def _hex(rgb: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{max(0, min(255, round(c))):02x}" for c in rgb)


def relative_luminance(color: str) -> float:
    """WCAG 2 relative luminance of #rrggbb (0 black .. 1 white)."""

    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in _rgb(color))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: str, b: str) -> float:
    """WCAG 2 contrast ratio of two colours, 1 to 21."""
    la, lb = relative_luminance(a), relative_luminance(b)
    return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)


def text_on(background: str) -> str:
    """White or near black, whichever contrasts more with `background`."""
    return "#ffffff" if contrast_ratio("#ffffff", background) >= contrast_ratio(NEAR_BLACK, background) else NEAR_BLACK


def readable_on(color: str, background: str, minimum: float = TEXT_CONTRAST) -> str:
    """`color`, mixed step by step toward black (on a light background) or white (on a dark
    one) until it contrasts `minimum`:1 with `background` (links in the primary colour)."""
    target = (0.0, 0.0, 0.0) if relative_luminance(background) > 0.18 else (255.0, 255.0, 255.0)
    start = _rgb(color)
    for step in range(21):
        t = step / 20
        mixed = _hex(tuple(s + (e - s) * t for s, e in zip(start, target, strict=True)))  # type: ignore[arg-type]
        if contrast_ratio(mixed, background) >= minimum:
            return mixed
    return _hex(target)


def _is_dark(color: str) -> bool:
    return relative_luminance(color) < 0.18


def _palette(settings: HostedPagesSettings, dark: bool) -> dict[str, str]:
    """The custom properties of one scheme. In the dark scheme a light background colour
    gives way to a dark one (the configured colour is the light scheme's)."""
    background = settings.background_color
    if dark and not _is_dark(background):
        background = DARK_BACKGROUND
    preferred = DARK_TEXT if _is_dark(background) else LIGHT_TEXT
    surface, surface_text = ("#1e293b", DARK_TEXT) if dark else ("#ffffff", LIGHT_TEXT)
    return {
        "--sy-primary": settings.primary_color,
        "--sy-on-primary": text_on(settings.primary_color),
        "--sy-link": readable_on(settings.primary_color, surface),
        "--sy-bg": background,
        "--sy-text": preferred if contrast_ratio(preferred, background) >= 7 else text_on(background),
        "--sy-surface": surface,
        "--sy-surface-text": surface_text,
        "--sy-muted": "#94a3b8" if dark else "#475569",
        "--sy-border": "#475569" if dark else "#94a3b8",
        "--sy-error": "#fca5a5" if dark else "#b42318",
        "--sy-error-bg": "#3f1d1d" if dark else "#fdecea",
        "--sy-focus": "#ffbf47",
    }


def _block(selector: str, variables: dict[str, str], scheme: str, indent: str = "") -> str:
    inner = indent + "  "
    lines = [f"{inner}color-scheme: {scheme};"] + [f"{inner}{name}: {value};" for name, value in variables.items()]
    return f"{indent}{selector} {{\n" + "\n".join(lines) + f"\n{indent}}}\n"


def theme_css(settings: HostedPagesSettings) -> str:
    """The theme stylesheet of these settings (deterministic: same settings, same bytes)."""
    head = "/* stackyard hosted pages: the theme of spec.auth.hostedPages */\n"
    if settings.color_scheme == "light":
        return head + _block(":root", _palette(settings, dark=False), "light")
    if settings.color_scheme == "dark":
        return head + _block(":root", _palette(settings, dark=True), "dark")
    return (
        head
        + _block(":root", _palette(settings, dark=False), "light dark")
        + "@media (prefers-color-scheme: dark) {\n"
        + _block(":root", _palette(settings, dark=True), "dark", indent="  ")
        + "}\n"
    )


@router.get("/theme.css")
async def theme(request: Request) -> Response:
    settings, _ = hosted_settings(request)
    body = theme_css(settings)
    etag = '"' + hashlib.sha256(body.encode()).hexdigest()[:20] + '"'
    headers = {"etag": etag, "cache-control": "no-cache"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="text/css", headers=headers)


@router.get("/static/{name}")
async def static(request: Request, name: str) -> Response:
    """The files of static/ (by exact name: no path, no directory listing)."""
    files = {p.name: p for p in STATIC_DIR.iterdir() if p.is_file()}
    path = files.get(name)
    if path is None or path.suffix not in _TYPES:
        return error_page(request, title="Not found", detail="There is no such file.", status=404)
    return FileResponse(path, media_type=_TYPES[path.suffix], headers={"cache-control": "public, max-age=300"})
