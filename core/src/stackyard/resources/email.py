"""EmailProvider: one way of sending mail, tried in priority order; EmailTemplate: what is sent."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, JsonValue, StringConstraints, field_validator, model_validator

from ..email.templates import LocaleVariant, TemplateInvalid, TemplateSource, VariableSpec, compile_template
from .base import (
    AGE_COLUMN,
    DISABLED_REASON,
    READY_COLUMN,
    REASON_COLUMN,
    SECRET_REASONS,
    CamelModel,
    ConditionInfo,
    CustomResource,
    Duration,
    KindInfo,
    PrinterColumn,
    ResourceStatus,
    SecretKeyRef,
    StackRef,
    member_ready,
)

EMAIL_PROVIDER_TYPES = ("smtp", "resend", "sendgrid", "postmark", "ses")
Domain = Annotated[str, StringConstraints(pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z]{2,63}$", max_length=253)]
HttpUrl = Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$", max_length=500)]


class SmtpSettings(CamelModel):
    host: str = Field(min_length=1, max_length=253, description="SMTP server host name.")
    port: int = Field(default=587, ge=1, le=65535, description="SMTP port (587 STARTTLS, 465 TLS, 25).")
    security: Literal["starttls", "tls", "none"] = Field(default="starttls", description="Transport security.")
    username: str | None = Field(default=None, max_length=256, description="SMTP AUTH user name.")
    password_secret_ref: SecretKeyRef | None = Field(default=None, description="SMTP AUTH password.")


SMTP_RULES: list[JsonValue] = [
    {
        "rule": "has(self.username) == has(self.passwordSecretRef)",
        "message": "username and passwordSecretRef must be set together",
    }
]


class ApiKeySettings(CamelModel):
    api_key_secret_ref: SecretKeyRef = Field(description="Secret key holding the provider's API key.")
    base_url: HttpUrl | None = Field(default=None, description="API base URL, to use a regional endpoint or a proxy.")


class ResendSettings(ApiKeySettings):
    webhook_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description=(
            "Secret key holding the webhook signing secret (whsec_...) that Resend shows for the endpoint "
            "/v1/emails/webhooks/<provider name>; events are refused without it."
        ),
    )


class SendGridSettings(ApiKeySettings):
    webhook_public_key: str | None = Field(
        default=None,
        max_length=1000,
        description=(
            "The Event Webhook's signature verification key (the base64 ECDSA public key SendGrid shows once "
            "signing is on); events are refused without it. A public key, so not a secret."
        ),
    )


class PostmarkSettings(ApiKeySettings):
    message_stream: str = Field(default="outbound", max_length=100, description="Postmark message stream.")
    webhook_username: str | None = Field(
        default=None,
        max_length=256,
        description="HTTP basic auth user name that the Postmark webhook URL carries; events are refused without it.",
    )
    webhook_password_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret key holding the webhook's basic auth password."
    )


POSTMARK_RULES: list[JsonValue] = [
    {
        "rule": "has(self.webhookUsername) == has(self.webhookPasswordSecretRef)",
        "message": "webhookUsername and webhookPasswordSecretRef must be set together",
    }
]

SNS_CERTIFICATE_URL = r"^https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/"


class SesSettings(CamelModel):
    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]$", description="AWS region, e.g. eu-west-1.")
    access_key_id_secret_ref: SecretKeyRef = Field(description="Secret key holding the AWS access key id.")
    secret_access_key_secret_ref: SecretKeyRef = Field(description="Secret key holding the AWS secret access key.")
    configuration_set: str | None = Field(default=None, max_length=64, description="SES configuration set name.")
    base_url: HttpUrl | None = Field(default=None, description="Endpoint override (VPC endpoint, tests).")
    webhook_topic_arns: list[Annotated[str, StringConstraints(pattern=r"^arn:aws[a-z-]*:sns:", max_length=256)]] = (
        Field(
            default_factory=list,
            max_length=20,
            description=(
                "SNS topics whose notifications (SES bounces, complaints, deliveries) "
                "/v1/emails/webhooks/<provider name> accepts; none when empty."
            ),
        )
    )
    sns_certificate_url_pattern: str = Field(
        default=SNS_CERTIFICATE_URL,
        max_length=300,
        description=(
            "Regular expression an SNS message's SigningCertURL (and SubscribeURL) must match before it is "
            "fetched; the default admits only AWS's own SNS endpoints."
        ),
    )


class CircuitBreakerSettings(CamelModel):
    failure_threshold: int = Field(default=5, ge=1, le=1000, description="Consecutive failures that open the breaker.")
    open_duration: Duration = Field(default="30s", description="How long the breaker stays open before a probe.")
    half_open_probes: int = Field(default=1, ge=1, le=100, description="Successful probes that close it again.")


class SendRate(CamelModel):
    messages: int = Field(ge=1, le=1_000_000, description="Messages allowed per period.")
    period: Duration = Field(default="1s", description="The period.")


class EmailProviderSpec(CamelModel):
    stack_ref: StackRef = Field(description="The Stack this provider sends for.")
    type: Literal["smtp", "resend", "sendgrid", "postmark", "ses"] = Field(description="Kind of provider.")
    priority: int = Field(default=100, ge=0, le=1000, description="Lower is tried first.")
    enabled: bool = Field(default=True, description="A disabled provider is kept but never used.")
    from_domains: list[Domain] = Field(
        default_factory=list, max_length=100, description="Sender domains it may send for; empty means any."
    )
    timeout: Duration = Field(default="10s", description="Time allowed for one send before failing over.")
    rate_limit: SendRate | None = Field(default=None, description="The provider's own send rate.")
    circuit_breaker: CircuitBreakerSettings = Field(
        default=CircuitBreakerSettings(), description="When to stop trying this provider for a while."
    )
    smtp: SmtpSettings | None = Field(
        default=None,
        description="Settings when type is smtp.",
        json_schema_extra={"x-kubernetes-validations": SMTP_RULES},
    )
    resend: ResendSettings | None = Field(default=None, description="Settings when type is resend.")
    sendgrid: SendGridSettings | None = Field(default=None, description="Settings when type is sendgrid.")
    postmark: PostmarkSettings | None = Field(
        default=None,
        description="Settings when type is postmark.",
        json_schema_extra={"x-kubernetes-validations": POSTMARK_RULES},
    )
    ses: SesSettings | None = Field(default=None, description="Settings when type is ses.")

    model_config = CamelModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": f"(self.type == '{t}') == has(self.{t})",
                    "message": f"spec.{t} must be set when type is {t}, and only then",
                }
                for t in EMAIL_PROVIDER_TYPES
            ]
        }
    }

    def secret_refs(self) -> dict[str, SecretKeyRef]:
        """The Secret keys this provider needs, by the credential name they fill."""
        refs: dict[str, SecretKeyRef | None] = {}
        if self.smtp:
            refs["password"] = self.smtp.password_secret_ref
        for settings in (self.resend, self.sendgrid, self.postmark):
            if settings:
                refs["apiKey"] = settings.api_key_secret_ref
        if self.resend:
            refs["webhookSecret"] = self.resend.webhook_secret_ref
        if self.postmark:
            refs["webhookPassword"] = self.postmark.webhook_password_secret_ref
        if self.ses:
            refs["accessKeyId"] = self.ses.access_key_id_secret_ref
            refs["secretAccessKey"] = self.ses.secret_access_key_secret_ref
        return {k: v for k, v in refs.items() if v is not None}


BreakerStateName = Literal["closed", "open", "half_open"]


class BreakerStatus(CamelModel):
    """The provider's circuit breaker, as the workers share it in Redis."""

    state: BreakerStateName = Field(description="closed (sending), open (skipped) or half_open (probing).")
    consecutive_failures: int = Field(default=0, ge=0, description="Failures since the last success.")
    times_opened: int = Field(default=0, ge=0, description="How often it has opened since it was created.")
    opened_at: str | None = Field(
        default=None, description="When it last opened.", json_schema_extra={"format": "date-time"}
    )


class LastAttempt(CamelModel):
    """The latest send or probe a worker made through this provider."""

    at: str = Field(description="When it ended.", json_schema_extra={"format": "date-time"})
    kind: Literal["send", "probe"] = Field(description="A message sent, or a probe (no message).")
    outcome: str = Field(max_length=64, description="sent, rejected, retryable, rate_limited, misconfigured, ok.")
    error: str | None = Field(default=None, max_length=1024, description="What went wrong (never a credential).")


class EmailProviderStatus(ResourceStatus):
    breaker: BreakerStatus | None = Field(default=None, description="The shared circuit breaker (written by workers).")
    last_attempt: LastAttempt | None = Field(default=None, description="The latest send or probe (written by workers).")


class EmailProvider(CustomResource):
    info = KindInfo(
        kind="EmailProvider",
        plural="emailproviders",
        short_names=["esp"],
        description=(
            "A way of sending transactional email (SMTP, Resend, SendGrid, Postmark, SES), tried in priority order."
        ),
        columns=[
            PrinterColumn("Type", ".spec.type"),
            PrinterColumn("Priority", ".spec.priority", "integer"),
            PrinterColumn("Enabled", ".spec.enabled", "boolean", priority=1),
            READY_COLUMN,
            PrinterColumn(
                "Reachable", '.status.conditions[?(@.type=="Reachable")].status', description="Answered the last try"
            ),
            PrinterColumn("Breaker", ".status.breaker.state", description="Shared circuit breaker state"),
            REASON_COLUMN,
            AGE_COLUMN,
        ],
        conditions=[
            member_ready(**SECRET_REASONS, **DISABLED_REASON),
            ConditionInfo(
                "CredentialsResolved",
                "Every Secret key the provider references is present.",
                {
                    "SecretsFound": "True: every referenced Secret key is present.",
                    **SECRET_REASONS,
                    "Invalid": "False: the spec does not parse, so its references were not looked at.",
                },
            ),
            ConditionInfo(
                "Reachable",
                "The provider answered the last probe or send (a rejected message is an answer).",
                {
                    "Answered": "True: the last probe or send was answered.",
                    "InvalidCredentials": "False: the provider refused the credentials.",
                    "Misconfigured": "False: the provider refused the settings.",
                    "RateLimited": "False: the provider said to slow down.",
                    "Timeout": "False: no answer in time.",
                    "Unreachable": "False: the provider could not be reached.",
                },
                set_by="worker",
            ),
        ],
    )
    kind: Literal["EmailProvider"] = "EmailProvider"
    spec: EmailProviderSpec
    status: EmailProviderStatus = Field(default_factory=EmailProviderStatus)


# -- EmailTemplate ----------------------------------------------------------------------

MAX_BODY_CHARS = 512 * 1024
VARIABLE_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
LOCALE_TAG = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$"

Subject = Annotated[str, StringConstraints(min_length=1, max_length=998)]
Body = Annotated[str, StringConstraints(min_length=1, max_length=MAX_BODY_CHARS)]


def _keys_match(pattern: str, what: str, example: str) -> dict[str, JsonValue]:
    """A CEL rule on a map's keys (a structural schema has no propertyNames)."""
    return {
        "x-kubernetes-validations": [
            {"rule": f"self.all(k, k.matches('{pattern}'))", "message": f"every {what} must look like {example}"}
        ]
    }


def _check_keys(keys: dict[str, Any], pattern: str, what: str, example: str) -> None:
    for key in keys:
        if not re.fullmatch(pattern, key):
            raise ValueError(f"{what} {key!r} must look like {example}")


class TemplateVariable(CamelModel):
    required: bool = Field(default=True, description="A send without this variable is refused.")
    default: Any = Field(
        default=None,
        description="Any JSON value, used when an optional variable is not given (a required one has none).",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    description: str = Field(default="", max_length=1000, description="What the variable holds, for people.")
    # "A required variable has no default" is the engine's check (Ready=False): CEL cannot
    # see a field of any JSON value, so no rule on the API server can say it.


class TemplateLocale(CamelModel):
    subject: Subject | None = Field(default=None, description="The subject in this locale; the base subject if absent.")
    html: Body | None = Field(
        default=None,
        description="The HTML body in this locale. Setting html or text replaces the whole body for this locale.",
    )
    text: Body | None = Field(
        default=None, description="The text body in this locale; derived from its html when absent."
    )


class EmailTemplateSpec(CamelModel):
    stack_ref: StackRef = Field(description="The Stack whose api sends with this template.")
    subject: Subject = Field(description="The subject line, a template (e.g. 'Welcome, {{ name }}').")
    html: Body | None = Field(
        default=None, description="The HTML body, a template, autoescaped; at least one of html and text."
    )
    text: Body | None = Field(
        default=None,
        description="The text body, a template; derived from the HTML when absent; at least one of html and text.",
    )
    variables: dict[str, TemplateVariable] = Field(
        default_factory=dict,
        max_length=100,
        description="The variables the parts may use, by name; a part using any other name is refused.",
        json_schema_extra=_keys_match(VARIABLE_NAME, "variable name", "first_name (letters, digits, '_')"),
    )
    locales: dict[str, TemplateLocale] = Field(
        default_factory=dict,
        max_length=100,
        description="Translations by locale tag (fr, pt-BR); the base parts are in defaultLocale.",
        json_schema_extra=_keys_match(LOCALE_TAG, "locale tag", "fr or pt-BR"),
    )
    default_locale: str = Field(
        default="en", max_length=35, pattern=LOCALE_TAG, description="The locale of the base subject and bodies."
    )

    model_config = CamelModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {"rule": "has(self.html) || has(self.text)", "message": "at least one of html and text must be set"}
            ]
        }
    }

    @field_validator("variables")
    @classmethod
    def _variable_names(cls, value: dict[str, TemplateVariable]) -> dict[str, TemplateVariable]:
        _check_keys(value, VARIABLE_NAME, "variable name", "first_name (letters, digits, '_')")
        return value

    @field_validator("locales")
    @classmethod
    def _locale_tags(cls, value: dict[str, TemplateLocale]) -> dict[str, TemplateLocale]:
        _check_keys(value, LOCALE_TAG, "locale tag", "fr or pt-BR")
        return value

    @model_validator(mode="after")
    def _compiles(self) -> EmailTemplateSpec:
        # The engine's message names the part, the locale and the line:
        # "html (fr), line 3: unexpected '}'".
        if self.html is None and self.text is None:
            raise ValueError("at least one of html and text must be set")
        try:
            compile_template(self.template_source())
        except TemplateInvalid as exc:
            raise ValueError(exc.message) from None
        return self

    def template_source(self) -> TemplateSource:
        """What the template engine compiles."""
        return TemplateSource(
            subject=self.subject,
            html=self.html,
            text=self.text,
            variables={
                name: VariableSpec(required=v.required, default=v.default, description=v.description)
                for name, v in self.variables.items()
            },
            locales={
                tag: LocaleVariant(subject=loc.subject, html=loc.html, text=loc.text)
                for tag, loc in self.locales.items()
            },
            default_locale=self.default_locale,
        )


class EmailTemplate(CustomResource):
    info = KindInfo(
        kind="EmailTemplate",
        plural="emailtemplates",
        short_names=["etpl"],
        description=(
            "A transactional email: subject, HTML and text bodies (sandboxed Jinja templates), the variables "
            "they use and translations; checked when applied."
        ),
        columns=[
            PrinterColumn("Default Locale", ".spec.defaultLocale"),
            PrinterColumn("Subject", ".spec.subject", priority=1),
            READY_COLUMN,
            REASON_COLUMN,
            AGE_COLUMN,
        ],
        conditions=[member_ready()],
    )
    kind: Literal["EmailTemplate"] = "EmailTemplate"
    spec: EmailTemplateSpec
    status: ResourceStatus = Field(default_factory=ResourceStatus)
