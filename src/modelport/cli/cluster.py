"""``modelport cluster status ADDRESS``: the nodes of a Ray cluster, their devices, versions and runtimes."""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from modelport.cli import options as opt
from modelport.cli.common import console, print_json


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Fleets of devices on Ray: see what a cluster holds (bench/port take --cluster).")
    app.add_typer(group, name="cluster")

    @group.command("status")
    def status_cmd(
        address: str = typer.Argument(..., help="The head node's address (HOST:PORT, as `ray start --head` printed)."),
        wait: float = typer.Option(120.0, "--wait", min=1.0, help="Seconds to wait for every node's answer."),
        as_json: bool = opt.JSON,
    ) -> None:
        """Run `doctor` on every node: device label, CPUs/GPUs, versions, which runtimes it can run."""
        from modelport.cluster.connection import connected
        from modelport.cluster.nodes import cluster_status

        with connected(address) as ray:
            report = cluster_status(ray, address, timeout_s=wait)
        if as_json:
            print_json(report.to_json())
        else:
            table = Table(title=f"cluster {address} ({len(report.nodes)} nodes)", title_justify="left")
            for col in ("node", "device", "CPUs", "GPUs", "CPU", "python", "modelport", "ray", "runtimes"):
                table.add_column(col)
            for s in report.nodes:
                n = s.node
                if s.doctor is None:
                    table.add_row(
                        n.address, n.device or "–", f"{n.cpus:g}", f"{n.gpus:g}", f"[red]{escape(s.error or '')}[/]"
                    )
                    continue
                env = s.doctor.environment
                versions = env.package_versions
                runtimes = ", ".join(r.name for r in s.doctor.runtimes if r.available)
                table.add_row(
                    n.address,
                    n.device or "–",
                    f"{n.cpus:g}",
                    f"{n.gpus:g}",
                    escape(env.cpu_model),
                    env.python,
                    versions.get("modelport", "?"),
                    versions.get("ray", "?"),
                    runtimes,
                )
            out = console()
            out.print(table)
            if report.mismatched:
                out.print(f"[red]versions differ between nodes: {', '.join(report.mismatched)} (they must match)[/]")
        if report.mismatched or any(s.doctor is None and s.node.alive for s in report.nodes):
            raise typer.Exit(code=1)  # a dead node is listed, not a failure: Ray keeps lost nodes in its table


def fleet_matrix(report: Any, title: str) -> Table:
    """The fleet's target × device matrix (:func:`modelport.cluster.render.matrix`) as a terminal table."""
    from modelport.cluster.render import matrix

    headers, rows = matrix(report)
    table = Table(title=title, title_justify="left", min_width=len(title))  # a narrow table would wrap the title
    for i, h in enumerate(headers):
        table.add_column(h, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*(escape(c) for c in row))
    return table
