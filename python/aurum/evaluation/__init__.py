"""Scoring the microstructure detectors against labelled simulator sessions (``aurum eval``)."""
