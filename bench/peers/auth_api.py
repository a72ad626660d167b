"""The real api, as `stackyard-api` serves it, plus one route for bench/auth.py.

    STACKYARD_CONFIG_DIR=<dir> python bench/peers/auth_api.py PORT

`create_app` over the config directory (as `stackyard_api.main` builds it), served by
uvicorn with the same options, and on that same app:

- `GET /bench/bare`: a small JSON and nothing else, the peer of `GET /v1/auth/me`. It goes
  through the same middleware (PrincipalMiddleware, RateLimitMiddleware) as every route.
- `GET /bench/context` and `GET /bench/claims`: the same small JSON from a route that
  takes the `AuthDep` (the AuthContext), or the `ClaimsDep` (the AuthContext, then the
  verified claims whose session is alive) as `/v1/auth/me` does: steps between the two, so
  that bench/auth.py can say what each dependency costs.
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI
from stackyard.logs import configure_logging
from stackyard.runtime import Runtime
from stackyard_api.app import create_app
from stackyard_api.auth_deps import AuthDep, ClaimsDep


def bench_app() -> FastAPI:
    app = create_app(Runtime.from_environment("stackyard-api"))

    @app.get("/bench/bare")
    async def bare() -> dict[str, str]:
        return {"status": "ok", "service": "stackyard-api"}

    @app.get("/bench/context")
    async def context(context: AuthDep) -> dict[str, str]:
        return {"status": "ok", "service": "stackyard-api"}

    @app.get("/bench/claims")
    async def claims(claims: ClaimsDep) -> dict[str, str]:
        return {"status": "ok", "service": "stackyard-api"}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("port", type=int)
    args = parser.parse_args()
    configure_logging("stackyard-api")
    uvicorn.run(bench_app(), host="127.0.0.1", port=args.port, log_config=None, access_log=False, proxy_headers=False)


if __name__ == "__main__":
    main()
