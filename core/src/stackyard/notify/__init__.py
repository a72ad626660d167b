"""Notifications and webhooks: NotificationWorkflows run per recipient across email, the
in-app feed, web push and webhooks; Webhooks deliver platform events, signed per Standard
Webhooks. See docs/notify.md.
"""
