"""Notifications and webhooks: NotificationWorkflows run per recipient across email, the
in-app feed, web push and webhooks; Webhooks deliver platform events, signed per Standard
Webhooks.

- `contract`: the wire models of /v1/notify (triggers, runs, preferences); `problems`: its errors
- `service`: `NotifyService`, what the api does (trigger with idempotency, runs, preferences)
- `workflow`: the job functions `stackyard.notify.run` (one recipient's run, each step once)
  and `stackyard.notify.fanout`; `runs`: the run records
- `render`, `conditions`, `preferences`, `recipients`, `digest`: the decisions of a step
- `feed`, `feed_contract`, `live`: the in-app feed in MongoDB and its live delivery (Redis
  pub/sub to the SSE streams of every api replica)
- `push`, `push_contract`, `push_subscriptions`: web push (RFC 8291 payloads, RFC 8292 VAPID)
- `events`: `PlatformEvents`, the events Webhooks subscribe to; `webhooks`: delivering one,
  signed; `deliveries`: the delivery log; `webhook_contract`: the wire models of /v1/webhooks

See docs/notify.md, notify-feed.md, notify-push.md and notify-webhooks.md.
"""
