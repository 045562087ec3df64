"""clustersim: a discrete-event simulator for scheduling work on compute clusters.

The package is layered so that dependencies point one way::

    model  <-  policies  <-  control  <-  engine / real  <-  runner / cli

``sim.model`` holds pure data (jobs, clusters, throughput tables, snapshots and
decisions); ``sim.policies`` holds pure ``decide(snapshot) -> Decision`` objects;
``sim.control`` is the one caller of policies; ``sim.engine`` (SimPy) and
``sim.real`` (Dask) apply the Controller's actions.
"""

__version__ = "0.1.0"
