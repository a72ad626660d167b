"""The social login API's request and response bodies (/v1/auth/oauth, /v1/auth/identities),
shared by the api's router and the SDK."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from .contract import Mode, Wire


class ProviderInfo(Wire):
    name: str = Field(description="The IdentityProvider's name: the {provider} of the other routes.")
    type: Literal["google", "github", "oidc"]
    display_name: str = Field(description="What the login button says.")


class ProviderList(Wire):
    model_config = Wire.model_config | {
        "json_schema_extra": {"examples": [{"items": [{"name": "google", "type": "google", "displayName": "Google"}]}]}
    }
    items: list[ProviderInfo]


class ExchangeRequest(Wire):
    model_config = Wire.model_config | {
        "json_schema_extra": {"examples": [{"code": "the code query parameter of redirect_to"}]}
    }
    code: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    code_verifier: Annotated[str, StringConstraints(min_length=43, max_length=128)] | None = Field(
        default=None, description="The verifier of the code_challenge given to authorize, if one was."
    )
    mode: Mode = "bearer"


class IdentityView(Wire):
    provider: str
    type: str | None = Field(description="The provider's type; null when its IdentityProvider is gone.")
    display_name: str | None
    email: str | None
    email_verified: bool
    linked_at: datetime


class IdentityList(Wire):
    items: list[IdentityView]
