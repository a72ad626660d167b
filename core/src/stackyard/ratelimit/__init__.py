"""Rate limiting: RateLimitPolicy enforced with one atomic Redis round trip per policy.

- `policy`: a policy compiled for deciding (numbers in script units, matchers built once)
- `scripts`: fixed window, sliding window, token bucket and GCRA as Lua (EVALSHA)
- `limiter`: `RateLimiter` (time budget, failure mode, deny cache)
- `keys`, `headers`: pure functions for who is counted and what the answer says
- `middleware`: `RateLimitMiddleware` for any ASGI app; `sources`: where policies come from
- `client`: `RateLimitClient` for POST /v1/ratelimit/check, `RemotePolicies`

See docs/ratelimit.md.
"""

from .client import RateLimitClient, RateLimitClientError, RemotePolicies
from .contract import CheckRequest, CheckResult, PolicyList
from .decision import Decision, Verdict
from .limiter import DenyCache, RateLimiter
from .middleware import RateLimitMiddleware
from .policy import ALGORITHMS, Policy, PolicySet
from .sources import LivePolicies, PolicySource, StaticPolicies

__all__ = [
    "ALGORITHMS",
    "CheckRequest",
    "CheckResult",
    "Decision",
    "DenyCache",
    "LivePolicies",
    "Policy",
    "PolicyList",
    "PolicySet",
    "PolicySource",
    "RateLimitClient",
    "RateLimitClientError",
    "RateLimitMiddleware",
    "RateLimiter",
    "RemotePolicies",
    "StaticPolicies",
    "Verdict",
]
