"""Test helpers for Aurum: independent plain-Python references that the native engine is checked against."""
