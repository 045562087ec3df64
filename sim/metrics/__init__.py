"""Turning an executor's records into tables and summary metrics."""

from sim.metrics.summary import job_table, summarise

__all__ = ["job_table", "summarise"]
