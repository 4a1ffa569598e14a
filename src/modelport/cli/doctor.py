"""``modelport doctor``."""

from __future__ import annotations

import typer
from rich.table import Table

from modelport.cli import options as opt
from modelport.cli.common import console, print_json


def register(app: typer.Typer) -> None:
    @app.command("doctor")
    def doctor_cmd(as_json: bool = opt.JSON) -> None:
        """Show Python and package versions, which runtimes import, devices and CPU flags."""
        from modelport.diagnostics import doctor

        report = doctor()
        if as_json:
            print_json(report.to_json())
            return
        env = report.environment
        out = console()
        out.print(f"Python {env.python} ({report.executable}) on {env.platform}")
        out.print(f"CPU: {env.cpu_model}, {env.cpu_count} cores, {env.memory_gb:.0f} GiB")
        out.print("CPU flags: " + (", ".join(env.cpu_flags) or "none of interest"))
        out.print("GPUs: " + (", ".join(env.gpus) or "none"))
        table = Table(title="runtimes", title_justify="left")
        for col in ("runtime", "status", "version", "devices / detail"):
            table.add_column(col)
        for r in report.runtimes:
            status = "[green]ok[/]" if r.available else "[yellow]missing[/]"
            table.add_row(r.name, status, r.version, ", ".join(r.devices) or r.detail)
        out.print(table)
        pk = Table(title="packages", title_justify="left")
        pk.add_column("package")
        pk.add_column("version")
        for name, version in env.packages:
            pk.add_row(name, version)
        out.print(pk)
