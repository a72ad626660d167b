"""Password hashing (argon2id through pwdlib) and the password policy.

Parameters follow the OWASP Password Storage Cheat Sheet's argon2id line "m=19456 (19 MiB),
t=2, p=1": about 20 ms a hash on one core here, cheap enough for a login, dear for an
attacker. A stored hash with other parameters verifies and is replaced on the next login
(`verify` returns the new hash).

The policy refuses short passwords, passwords from zxcvbn's offline list of the 30,000 most
common ones (drawn from breach corpora), variations of the account's email, and anything
zxcvbn scores below 2 ("too guessable")."""

from __future__ import annotations

import asyncio
from functools import lru_cache

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from zxcvbn import zxcvbn
from zxcvbn.frequency_lists import FREQUENCY_LISTS

from ..resources.stack import PasswordPolicy
from .errors import WeakPassword

MEMORY_KIB, TIME_COST, PARALLELISM = 19456, 2, 1
MAX_LENGTH = 256
_DUMMY_PASSWORD = "stackyard-dummy-password-for-equal-timing"


class PasswordHasher:
    def __init__(self, memory_kib: int = MEMORY_KIB, time_cost: int = TIME_COST, parallelism: int = PARALLELISM):
        self._hash = PasswordHash([Argon2Hasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)])
        self._dummy = self._hash.hash(_DUMMY_PASSWORD)

    async def hash(self, password: str) -> str:
        """argon2id in a thread: the event loop keeps serving while it runs."""
        return await asyncio.to_thread(self._hash.hash, password)

    async def verify(self, password: str, stored: str) -> tuple[bool, str | None]:
        """(matches, a new hash when the stored one has outdated parameters)."""
        try:
            return await asyncio.to_thread(self._hash.verify_and_update, password, stored)
        except Exception:  # an unreadable stored hash is a failed login, not a 500
            return False, None

    async def dummy_verify(self, password: str) -> None:
        """The same work as a real verification, for an account that does not exist, so that
        response times do not tell whether an email address has an account."""
        await asyncio.to_thread(self._hash.verify, password, self._dummy)


@lru_cache(maxsize=1)
def _common_passwords() -> frozenset[str]:
    return frozenset(FREQUENCY_LISTS["passwords"])


def check_policy(password: str, policy: PasswordPolicy, *, email: str | None = None) -> None:
    """Raise WeakPassword with a reason a person can act on."""
    if len(password) < policy.min_length:
        raise WeakPassword(f"the password must have at least {policy.min_length} characters")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"the password must have at most {MAX_LENGTH} characters")
    if not policy.reject_common:
        return
    lowered = password.lower()
    if lowered in _common_passwords() or lowered.rstrip("0123456789!.?") in _common_passwords():
        raise WeakPassword("this password is on the list of common and breached passwords; choose another")
    if email:
        local = email.split("@", 1)[0].lower()
        if lowered in {email.lower(), local} or (
            len(local) >= 4 and local in lowered and len(lowered) - len(local) < 6
        ):
            raise WeakPassword("the password must not be a variation of the email address")
    result = zxcvbn(password[:100], user_inputs=[email] if email else [])
    if result["score"] < 2:
        warning = result["feedback"].get("warning") or "it is too easy to guess"
        raise WeakPassword(f"the password is too easy to guess: {warning.rstrip('.').lower()}")
