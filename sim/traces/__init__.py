"""Job traces: reading/writing ElasticFlow and ITP CSVs, and the synthetic generator.

Public API:

* :func:`read_trace` -- load an artifact- or ITP-form CSV (optionally gzipped).
* :func:`write_trace` -- write jobs in the artifact form (round-trips with ``read_trace``).
* :func:`generate_trace` -- the ElasticFlow artifact's synthetic generator, seeded.
"""

from sim.traces.elasticflow import ARTIFACT_COLUMNS, ITP_COLUMNS, read_trace, write_trace
from sim.traces.generate import GPU_COUNT_SHARES, TEMPLATES, generate_trace

__all__ = [
    "ARTIFACT_COLUMNS",
    "GPU_COUNT_SHARES",
    "ITP_COLUMNS",
    "TEMPLATES",
    "generate_trace",
    "read_trace",
    "write_trace",
]
