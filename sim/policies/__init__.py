"""Scheduling policies, one module per policy.

The registry (:mod:`sim.registry`) imports the modules listed in ``BUILTIN``;
each registers its class with ``@register``.
"""

BUILTIN = (
    "sim.policies.fifo",
    "sim.policies.edf",
    "sim.policies.ef",
    "sim.policies.tiresias",
    "sim.policies.gandiva",
    "sim.policies.themis",
    "sim.policies.chronus",
    "sim.policies.noreuse",
    "sim.policies.reuse",
    "sim.policies.gpr",
)
