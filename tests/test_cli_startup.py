"""CLI start-up: a verb imports only its own module, so `modelport inspect` does not pay for Whisper or TF."""

from __future__ import annotations

import subprocess
import sys

from modelport.cli.main import VERB_MODULES, VERBS, build_app, invoked_verb


def test_invoked_verb_skips_root_flags_and_ignores_unknown_words() -> None:
    assert invoked_verb(["--debug", "-v", "inspect", "m.onnx"]) == "inspect"
    assert invoked_verb(["bench-transcribe", "x.wav"]) == "bench-transcribe"
    assert invoked_verb(["--help"]) is None
    assert invoked_verb(["bogus", "inspect"]) is None
    assert invoked_verb([]) is None


def test_every_verb_is_registered_by_its_module() -> None:
    full = {c.name for c in build_app().registered_commands} | {g.name for g in build_app().registered_groups}
    assert full == set(VERBS)
    for verb, module in VERBS.items():
        app = build_app(verb)
        names = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
        assert verb in names
        assert names == {v for v, m in VERBS.items() if m == module}
    assert set(VERB_MODULES) == set(VERBS.values())


def test_inspect_does_not_import_other_verbs_engines() -> None:
    code = (
        "import sys; from modelport.cli.main import main; rc = main(['inspect', '--help']);"
        "heavy = [m for m in ('faster_whisper', 'ctranslate2', 'tensorflow', 'torch', 'openvino', 'nncf')"
        " if m in sys.modules]; print(rc, heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "0 []"
