"""onnxscript rewrite rules (pattern / check / rewrite), one module per family; passes/rewrite.py applies them."""
