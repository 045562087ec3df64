"""Figure sets: each module draws one paper's figures from the results store.

A figure set module exposes ``FIGURES`` (figure id -> :class:`analysis.base.Figure`):
the runs each figure needs (a grid file, or named scenario files of any kind, in
``scenarios/``) and a ``draw`` function that reads the store only, never the engine.
``clustersim figures NAME`` runs what is missing into the store through
:mod:`sim.sweep`, then calls ``draw``. No figure set keeps run folders of its own.
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: figure-set name -> module
FIGURE_SETS = {"elasticflow": "analysis.elasticflow", "taskvine": "analysis.taskvine",
               "gpr": "analysis.gpr", "threeways": "analysis.threeways",
               "dragon": "analysis.dragon"}


def figure_set(name: str) -> ModuleType:
    """The module of figure set ``name`` (KeyError if unknown)."""
    return importlib.import_module(FIGURE_SETS[name])
