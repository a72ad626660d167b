"""The notification capability's problems (RFC 9457). Each part of the capability adds its
own classes at the end of this file."""

from __future__ import annotations

from ..problems import NotFound, Problem, ServiceUnavailable


class WorkflowNotFound(NotFound):
    """No NotificationWorkflow with that trigger key in the Stack's config."""

    slug, title = "workflow-not-found", "Notification workflow not found"


class RunNotFound(NotFound):
    slug, title = "run-not-found", "Notification run not found"


class TriggerInvalid(Problem):
    """A trigger the workflow cannot run: a recipient user id that does not exist, a
    recipient without the address a step needs, a cursor this api did not make."""

    status, slug, title = 422, "trigger-invalid", "Invalid trigger"


class SubscriptionInvalid(Problem):
    """A web push subscription the api cannot send to: an endpoint that is not https, a
    p256dh that is not an uncompressed P-256 point, an auth secret that is not 16 bytes."""

    status, slug, title = 422, "subscription-invalid", "Invalid push subscription"


class PushNotConfigured(ServiceUnavailable):
    """The Stack's credentials hold no VAPID key pair (the operator makes it)."""

    slug, title = "push-not-configured", "Web push not configured"


class WebhookNotFound(NotFound):
    """No Webhook of that name in the Stack's config."""

    slug, title = "webhook-not-found", "Webhook not found"


class DeliveryNotFound(NotFound):
    """No webhook delivery with that id in the delivery log."""

    slug, title = "delivery-not-found", "Webhook delivery not found"


class FeedMessageNotFound(NotFound):
    """No feed message with that id for the caller (another user's message is not revealed)."""

    slug, title = "feed-message-not-found", "Feed message not found"
