"""Aurum: a low-latency orderflow engine for CME gold futures (GC) on Databento data.

The record path is native (``aurum._native``, Rust); bar-level kernels are Cython
(``aurum.kernels``); Python wires them together.
"""

__version__ = "0.1.0"
