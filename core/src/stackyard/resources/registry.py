"""Every kind of the stackyard.dev API, in the order they are documented."""

from __future__ import annotations

from .base import CustomResource
from .email import EmailProvider
from .ratelimit import RateLimitPolicy
from .stack import Stack

KINDS: list[type[CustomResource]] = [Stack, EmailProvider, RateLimitPolicy]
BY_KIND: dict[str, type[CustomResource]] = {k.info.kind: k for k in KINDS}
