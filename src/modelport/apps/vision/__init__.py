"""Vision apps on any runtime: ``classify``, ``detect`` and ``depth``, and what they share (the model argument,
image and video input/output, the pipelined video loop)."""
