"""The organisation API's request and response bodies (/v1/auth/orgs), shared by the api's
router and the SDK."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from .contract import Email, Metadata, Wire

Role = Literal["owner", "admin", "member"]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Slug = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")]


class OrgCreate(Wire):
    model_config = Wire.model_config | {"json_schema_extra": {"examples": [{"name": "Acme Corp"}]}}
    name: Name
    slug: Slug | None = Field(default=None, description="Unique; made from the name when omitted.")
    metadata: Metadata = Field(default_factory=dict, max_length=50)


class OrgUpdate(Wire):
    name: Name | None = None
    slug: Slug | None = None
    metadata: Metadata | None = Field(default=None, max_length=50, description="Replaces the whole object.")


class Organization(Wire):
    id: str
    name: str
    slug: str
    metadata: dict[str, Any]
    role: Role = Field(description="Your role in it.")
    created_at: datetime
    updated_at: datetime


class OrganizationList(Wire):
    items: list[Organization]


class MemberAdd(Wire):
    model_config = Wire.model_config | {
        "json_schema_extra": {"examples": [{"email": "ben@example.com", "role": "member"}]}
    }
    user_id: str | None = Field(default=None, max_length=40)
    email: Email | None = None
    role: Role = "member"

    @model_validator(mode="after")
    def one_way_to_name_the_user(self) -> MemberAdd:
        if (self.user_id is None) == (self.email is None):
            raise ValueError("give userId or email (one of them)")
        return self


class RoleChange(Wire):
    role: Role


class Member(Wire):
    user_id: str
    email: str | None = None
    name: str | None = None
    role: Role
    joined_at: datetime


class MemberList(Wire):
    items: list[Member]
