"""Question 2: can a genetic algorithm find the lottery ticket? — the hook for the GA experiment.

Pending. The engineer who adds it replaces ``run`` and ``render`` here (same protocol as the other sections,
see ``experiments/common.py``): ``run(ctx)`` should compare, at equal training compute (count training
steps), the GA front against the SynFlow masks alone, the IMP ticket (``pruning.imp``) and random masks with
SynFlow's per-layer densities (``lotterysearch.masks.layerwise_shuffle``), as hypervolume and as accuracy
at fixed densities (e.g. 10%, 3%, 1%), and aligned vs unaligned crossover (``ga.align``); ``render`` returns
the markdown body with its figures under ``ctx.figures`` and a short written answer. ``PENDING`` tells
``run_all`` to skip the section's runtime and say so in the report.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from experiments.common import Context, Rendered, Section

PENDING = True


def run(ctx: Context) -> dict[str, Any]:
    return {"pending": True}


def render(results: Mapping[str, Any], ctx: Context) -> Rendered:
    text = (
        "*Pending the GA experiment.* This section will compare, at equal training compute, the GA front "
        "with the SynFlow masks alone, the IMP ticket and random masks with SynFlow's per-layer densities "
        "(hypervolume, and accuracy at densities 10%, 3%, 1%), and aligned with unaligned crossover."
    )
    return Rendered(body=text, answer="**Not yet answered**: pending the GA experiment (section 2).")


SECTION = Section("ga", "Genetic algorithm vs lottery tickets", 2, run, render)
