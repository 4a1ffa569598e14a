"""Fleets of devices on Ray: ``bench``/``port`` on every device node, ``cluster status`` (the ``cluster`` extra).

modelport never starts Ray itself: it connects to a cluster the user started (``ray start --head`` and ``ray start
--address HEAD --labels device=pi4 --resources '{"device:pi4": 1}'`` on each device), so it opens no dashboard or
job port. A device is the value of a node's ``device`` label (or its ``device:NAME`` resource); the quantity-1
``device:NAME`` resource keeps one benchmark at a time per device. :mod:`.nodes` reads the cluster,
:mod:`.fleet` runs a verb on every device and merges one report, :mod:`.tasks` holds what runs on the nodes.
See docs/cluster.md.
"""
