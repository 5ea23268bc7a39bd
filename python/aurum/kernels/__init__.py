"""Cython per-bar kernels. They read the native rings and tables in place, without copies:
the bar-level engines (pivots, Gann, cycles, bar statistics) and the decision layer's per-bar
path built on them (``decision_core`` and the pillar modules it drives)."""
