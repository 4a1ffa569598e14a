"""``modelport serve``: the porting web service (the ``serve`` extra: FastAPI + uvicorn)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from modelport.errors import RuntimeUnavailable


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve_cmd(
        host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (non-loopback needs --token-file)."),
        port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
        data: Path = typer.Option(
            Path("modelport-serve"), "--data", help="Folder for uploads, jobs, artifacts, job table."
        ),
        workers: int = typer.Option(1, "--workers", min=1, help="Jobs run at the same time; others queue."),
        max_upload_mb: int = typer.Option(2048, "--max-upload-mb", min=1, help="Largest upload, MiB."),
        job_timeout: float = typer.Option(3600.0, "--job-timeout", min=1.0, help="Wall-time limit of a job, s."),
        job_memory_mb: int = typer.Option(
            0, "--job-memory-mb", min=0, help="Resident-memory limit of one job, MiB (default: 3/4 of RAM ÷ --workers)."
        ),
        token_file: Path | None = typer.Option(None, "--token-file", help="File with the bearer token API calls need."),
        retention_days: float = typer.Option(
            7.0, "--retention-days", min=0.0, help="Delete finished jobs' files after."
        ),
    ) -> None:
        """Serve porting as a web service: upload a model, pick targets, watch it port, download the artifacts."""
        try:
            import uvicorn
        except ImportError as exc:
            raise RuntimeUnavailable(
                "the web service needs FastAPI and uvicorn", hint="pip install 'modelport[serve]'"
            ) from exc
        from modelport.cli.jobspec import CliCatalog
        from modelport.serve.app import create_app
        from modelport.serve.settings import ServeSettings, read_token

        memory = job_memory_mb or int(_ram_mb() * 0.75 / workers)
        settings = ServeSettings(
            data_dir=data.resolve(),
            host=host,
            port=port,
            workers=workers,
            max_upload_mb=max_upload_mb,
            job_timeout_s=job_timeout,
            job_memory_mb=memory,
            token=read_token(token_file) if token_file is not None else None,
            retention_s=retention_days * 86400.0,
        )
        service = create_app(settings, CliCatalog())
        typer.echo(f"modelport serve: http://{host}:{port}/  (data: {settings.data_dir}; API: /docs)", err=True)
        uvicorn.run(service, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)


def _ram_mb() -> int:
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20)
