"""`stackyard events`: send an event to the step functions waiting for it."""

from __future__ import annotations

from typing import Annotated

import typer

from .context import cli
from .jobs import parse_json
from .output import emit

app = typer.Typer(help="Events that resume waiting step functions.", no_args_is_help=True)


@app.command()
def send(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The event's name, as the steps wait for it.")],
    data: Annotated[str | None, typer.Option(help="The event's data, as JSON; the waiting steps receive it.")] = None,
) -> None:
    """Send an event; print how many waiting steps it resumed."""
    body = parse_json(data, "--data") if data is not None else None
    options = cli(ctx)
    with options.client() as client:
        result = client.events.send(name, body)
    text = f"event {name} resumed {result.delivered} waiting step{'' if result.delivered == 1 else 's'}"
    emit(options.output, result, [], text)
