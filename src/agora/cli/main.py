"""The `agora` command. Each noun lives in its own module; all of them talk to a node through its API."""

from __future__ import annotations

from typing import Annotated

import typer

from agora.cli import dataset, devnet, infer, intent, job, market, model, node, node_admin, train
from agora.cli.contract import app as contract_app
from agora.cli.ledger import app as ledger_app
from agora.cli.offer import app as offer_app
from agora.cli.output import PLAIN
from agora.cli.sim import app as sim_app
from agora.cli.trust import app as trust_app

app = typer.Typer(
    name="agora",
    help="agora: a decentralized compute network. Start with `agora devnet up` or `agora init`.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=PLAIN,
)


def _version(value: bool) -> None:
    if value:
        from agora import __version__

        typer.echo(f"agora {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", help="print the version and exit", callback=_version, is_eager=True)
    ] = False,
) -> None:
    """agora: a decentralized compute network. Start with `agora devnet up` or `agora init`."""


app.command("init")(node.init)
app.command("status")(node.status)
app.command("peers")(node.peers)
app.command("ping")(node.ping)
app.add_typer(market.app, name="market")
app.command("match")(intent.match)

hub_app = typer.Typer(help="Run a hub.", no_args_is_help=True, rich_markup_mode=PLAIN)
hub_app.command("up", context_settings=node.DAEMON_PASSTHROUGH)(node.hub_up)
app.add_typer(hub_app, name="hub")

node_app = typer.Typer(help="Run and inspect a node.", no_args_is_help=True, rich_markup_mode=PLAIN)
node_app.command("up", context_settings=node.DAEMON_PASSTHROUGH)(node.node_up)
node_app.command("info")(node_admin.info)
node_app.command("bench")(node_admin.bench)
node_app.command("grant")(node_admin.grant)
app.add_typer(node_app, name="node")

app.add_typer(devnet.app, name="devnet")
app.add_typer(job.app, name="job")
app.add_typer(node_admin.grant_app, name="grant")
app.add_typer(offer_app, name="offer")
app.add_typer(trust_app, name="trust")
app.add_typer(intent.app, name="intent")
app.add_typer(contract_app, name="contract")
app.add_typer(ledger_app, name="ledger")
app.add_typer(dataset.app, name="dataset")
app.add_typer(train.app, name="train")
app.add_typer(sim_app, name="sim")
app.add_typer(model.app, name="model")  # inference: model offers
app.command("infer")(infer.infer)
app.command("quote")(infer.quote)


def main() -> None:
    app()


__all__ = ["app", "main"]
