"""``modelport serve``: porting as a self-hosted web service (FastAPI + uvicorn, the ``serve`` extra).

Uploads are stored under the data folder with their sha256 and sniffed format; a job is one CLI run (``python -m
modelport VERB …``) in its own process group, under a wall-time and a memory limit, queued in a SQLite table
that survives restarts. The HTTP layer is :mod:`modelport.serve.app`; the job table :mod:`~modelport.serve.store`;
the queue and the child processes :mod:`~modelport.serve.jobs`; what a job spec may hold
:mod:`~modelport.serve.specs`. See docs/serve.md.
"""
