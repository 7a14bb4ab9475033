"""PostgreSQL tests get a private schema per test in the real server (tests/integration/namespaces.py)."""

from tests.integration.namespaces import make_db

__all__ = ["make_db"]
