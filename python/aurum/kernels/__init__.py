"""Cython per-bar kernels. They read the native bar ring as numpy views, without copies."""
