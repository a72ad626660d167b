"""`stackyard ratelimit`: the Stack's RateLimitPolicies from the command line — one decision
(`check`, charged as a service's request would be) and the policies in force with this api
process's counts (`policies`); and `stackyard config`, the configuration the api applies.

`check` exits 0 when the request may go on and 1 when the policy denies it, printing the
decision either way (`retryAfter`: the seconds to wait), so that a shell script can write
`if stackyard ratelimit check exports --key "$USER_ID"; then …`. An unknown policy or a
missing key is an api error: exit 1 too, with nothing on stdout and `error: …` on stderr
(`-o json` tells the two apart: a decision has `allowed`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from .context import EXIT_API_ERROR, cli
from .output import Table, emit, yes_no

if TYPE_CHECKING:
    from stackyard.ratelimit.contract import CheckResult, PolicyList
    from stackyard.runtime_contract import AppliedConfigInfo

app = typer.Typer(
    help="Rate limits: check a request against a RateLimitPolicy; the policies in force.", no_args_is_help=True
)


@app.command()
def check(
    ctx: typer.Context,
    policy: Annotated[str, typer.Argument(metavar="POLICY", help="The RateLimitPolicy's name.")],
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            "-k",
            help="Who is counted (a user id, tenant, API key id…); default: what the policy's key type takes "
            "from this request (its IP, …).",
        ),
    ] = None,
    cost: Annotated[int, typer.Option("--cost", min=0, help="Units the request costs; 0 only looks.")] = 1,
) -> None:
    """Charge COST to KEY under POLICY: exit 0 when allowed, 1 when denied (retryAfter says how long to wait)."""
    options = cli(ctx)
    with options.client() as client:
        result = client.ratelimit.check(policy, key, cost)
    emit(options.output, result, [decision_table(result)], decision_line(result))
    if not result.allowed:
        raise typer.Exit(EXIT_API_ERROR)


def decision_line(result: CheckResult) -> str:
    if not result.allowed:
        return f"denied: retry after {seconds(result.retry_after)}"
    if result.would_limit:
        return "allowed (dryRun: enforced, it would have been denied)"
    return f"allowed: {result.remaining} of {result.limit} left"


def decision_table(result: CheckResult) -> Table:
    rows = [
        ["POLICY", result.policy],
        ["KEY", result.key],
        ["ALLOWED", yes_no(result.allowed)],
        ["LIMIT", str(result.limit)],
        ["REMAINING", str(result.remaining)],
        ["RETRY AFTER", seconds(result.retry_after)],
        ["RESET AFTER", seconds(result.reset_after)],
        ["WINDOW", seconds(result.window)],
        ["MODE", result.mode + (" (would limit)" if result.would_limit else "")],
        ["SOURCE", result.source],
    ]
    return Table(["FIELD", "VALUE"], rows, header=False)


def seconds(value: float) -> str:
    return f"{round(value, 1):g}s"


@app.command()
def policies(ctx: typer.Context) -> None:
    """The RateLimitPolicies in force, with this api process's decisions since it started."""
    options = cli(ctx)
    with options.client() as client:
        listed = client.ratelimit.policies()
    emit(options.output, listed, [policies_table(listed)], f"config {listed.hash}")


def policies_table(listed: PolicyList) -> Table:
    rows = []
    for name, info in sorted(listed.policies.items()):
        spec, counts = info.spec, info.counts
        key = spec.key.type + (f":{spec.key.header}" if spec.key.header else "")
        rows.append(
            [
                name,
                spec.algorithm,
                str(spec.limit),
                spec.window,
                "-" if spec.burst is None else str(spec.burst),
                key,
                spec.mode,
                spec.failure_mode,
                yes_no(spec.enforce_in_api),
                str(counts.allowed),
                str(counts.limited),
                str(counts.would_limit),
                str(counts.failed),
            ]
        )
    columns = ["NAME", "ALGORITHM", "LIMIT", "WINDOW", "BURST", "KEY", "MODE", "ON FAILURE", "IN API"]
    return Table([*columns, "ALLOWED", "LIMITED", "WOULD LIMIT", "FAILED"], rows)


def config(ctx: typer.Context) -> None:
    """The configuration the api applies: hash, generation, capabilities, resources in force (no secret)."""
    options = cli(ctx)
    with options.client() as client:
        applied = client.config.get()
    emit(options.output, applied, [config_table(applied)])


def config_table(applied: AppliedConfigInfo) -> Table:
    at = datetime.fromtimestamp(applied.applied_at, UTC).isoformat(timespec="seconds")
    capabilities = " ".join(f"{name}={'on' if on else 'off'}" for name, on in applied.capabilities.items())
    rows = [
        ["HASH", applied.hash],
        ["STACK", f"{applied.stack} (namespace {applied.namespace})"],
        ["GENERATION", str(applied.generation)],
        ["CREDENTIALS REVISION", str(applied.credentials_revision)],
        ["APPLIED AT", at],
        ["CAPABILITIES", capabilities or "-"],
    ]
    for title, names in (
        ("EMAIL PROVIDERS", applied.email_providers),
        ("EMAIL TEMPLATES", applied.email_templates),
        ("RATE LIMIT POLICIES", applied.rate_limit_policies),
        ("JOB QUEUES", applied.job_queues),
        ("SCHEDULES", applied.schedules),
        ("IDENTITY PROVIDERS", applied.identity_providers),
        ("DATABASES", applied.databases),
        ("BUCKETS", applied.buckets),
        ("NOTIFICATION WORKFLOWS", applied.notification_workflows),
        ("WEBHOOKS", applied.webhooks),
        ("SEARCH INDEXES", applied.search_indexes),
        ("OIDC CLIENTS", applied.oidc_clients),
    ):
        rows.append([title, ", ".join(names) or "-"])
    rows.append(["LAST ERROR", applied.last_error or "-"])
    return Table(["FIELD", "VALUE"], rows, header=False)
