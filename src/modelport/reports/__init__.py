"""Reports: frozen dataclasses, the environment they were made in, and their renderers."""
