"""Cross-database tests get a private namespace per test in each real database (../namespaces.py)."""

from tests.integration.namespaces import make_db

__all__ = ["make_db"]
