"""Transactional email (being built: the issue "Transactional email" lists what remains,
chiefly sending as a job, the delivery log, webhooks, suppressions and the API).

- `message`: `OutgoingEmail`, `Sent` and the `SendFailure` kinds every provider speaks
- `addresses`: parsing, validation and normalisation of addresses
- `mime`: the MIME form of a message (SMTP, SES raw)
- `smtp`: `SmtpSender`, pooled and reused connections
- `http_providers`: `ResendSender`, `SendGridSender`, `PostmarkSender`, `SesSender`
- `breaker`: `CircuitBreaker`, one per provider, shared by every replica in Redis
- `templates`: the sandboxed template engine (compile checks, locales, CSS inlining)
- `delivery`: `deliver`, providers in priority order with failover, breakers and send rates
"""
