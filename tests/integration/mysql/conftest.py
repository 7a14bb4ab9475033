"""MariaDB tests get a private namespace per test in the real server (tests/integration/namespaces.py)."""

from tests.integration.namespaces import make_db

__all__ = ["make_db"]
