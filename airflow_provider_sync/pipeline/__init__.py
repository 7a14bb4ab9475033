"""Orchestration over core and dialects: extract, steps I/O, load, ownership, quarantine, probes."""
