"""Targets that are not databases: rows are published as change events instead of loaded into tables."""
