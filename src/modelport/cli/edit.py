"""``modelport edit …``: model edits. ``edit tflite-json`` turns a TFLite model into JSON and back; the graph edits
(merge, extract, outputs: ``cli/edit_graph.py``; rename, shapes, opset, constants, OpenVINO IR: ``cli/edit_tensors.py``)
register their own sub-commands."""

from __future__ import annotations

from pathlib import Path

import typer

from modelport.cli.common import console


def register(app: typer.Typer) -> None:
    from modelport.cli import edit_graph, edit_tensors

    edit_app = typer.Typer(
        help="Edit models: merge, extract, rename, shapes, opset, constants, outputs; TFLite ↔ JSON; OpenVINO IR.",
        no_args_is_help=True,
    )
    edit_graph.register(edit_app)
    edit_tensors.register(edit_app)

    @edit_app.command("tflite-json")
    def tflite_json_cmd(
        source: Path = typer.Argument(
            ..., help="A .tflite file (→ JSON) or a JSON file written by this command (→ .tflite)."
        ),
        output: Path = typer.Option(..., "--output", "-o", help="The .json or .tflite file to write."),
    ) -> None:
        """Write a TFLite flatbuffer as editable JSON, or pack such JSON back into a .tflite file."""
        from modelport.edit.tflite_json import json_to_tflite, tflite_to_json
        from modelport.errors import ModelLoadError

        if not source.exists():
            raise ModelLoadError("file not found", path=source)
        with source.open("rb") as f:
            head = f.read(8)
        if head[4:8] == b"TFL3":
            tflite_to_json(source, output)
            back = f"modelport edit tflite-json {output.name} -o model.tflite"
            console().print(f"wrote {output} (JSON of {source.name}; edit it, then `{back}`)")
        else:
            json_to_tflite(source, output)
            console().print(f"wrote {output} (TFLite packed from {source.name})")

    app.add_typer(edit_app, name="edit")
