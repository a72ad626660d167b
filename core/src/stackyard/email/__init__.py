"""Transactional email (in progress: the issue "Transactional email" builds it out).

- `message`: `OutgoingEmail`, `Sent` and the `SendFailure` kinds every provider speaks
"""
