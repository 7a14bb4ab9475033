"""Terminal or transient? Classifying failures across database drivers, and the retry policy built on it.

A *terminal* failure cannot heal by waiting (bad configuration, missing table, rejected credentials,
constraint violations, our :class:`~airflow_provider_sync.errors.TerminalError` family): retrying only
delays the alert. A *transient* one may (connection reset, server restarting, deadlock, lock or statement
timeout). Anything else is *unknown* and left to Airflow's ordinary ``retries``.

Drivers are recognised by their module name and error attributes, never imported here, so this module is
cheap to import while a DAG file is parsed.
"""

from __future__ import annotations

import enum
import socket
from collections.abc import Sequence
from typing import Any

from airflow.sdk import ExceptionRetryPolicy, RetryDecision, RetryRule

from airflow_provider_sync.errors import SyncError


class Verdict(enum.Enum):
    TERMINAL = "terminal"
    TRANSIENT = "transient"
    UNKNOWN = "unknown"


# SQLSTATE (PostgreSQL, ODBC): exact codes first, then two-character classes.
_SQLSTATE_TRANSIENT = {
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    "40003",  # statement_completion_unknown
    "55P03",  # lock_not_available
    "57014",  # query_canceled (statement_timeout)
    "57P01",  # admin_shutdown
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now
    "57P05",  # idle_session_timeout
    "53300",  # too_many_connections
    "53200",  # out_of_memory
    "58000",  # system_error
    "58030",  # io_error
    "HYT00",  # ODBC: timeout expired
    "HYT01",  # ODBC: connection timeout expired
}
_SQLSTATE_TRANSIENT_CLASSES = {"08"}  # connection_exception
_SQLSTATE_TERMINAL_CLASSES = {"0A", "22", "23", "28", "3D", "3F", "42", "44"}
# Auth rejection, unknown objects, syntax, privileges, data and constraint errors.

# MySQL / MariaDB error numbers (MySQLdb, PyMySQL, mysql-connector).
_MYSQL_TRANSIENT = {
    1040, 1053, 1158, 1159, 1160, 1161, 1205, 1213, 1317, 1927, 2002, 2003, 2006, 2013, 2055, 3024, 4031,
}
_MYSQL_TERMINAL = {
    1044, 1045, 1046, 1049, 1054, 1062, 1064, 1142, 1143, 1146, 1216, 1217, 1227, 1264, 1292, 1366, 1406,
    1451, 1452, 1698, 1048,
}
# SQL Server error numbers (pymssql, and pyodbc's native codes).
_MSSQL_TRANSIENT = {
    233, 1205, 1222, 10053, 10054, 10060, 10928, 10929, 20003, 20006, 20009, 20047, 40197, 40501, 40613,
    49918, 49919, 49920,
}
_MSSQL_TERMINAL = {207, 208, 229, 2601, 2627, 4060, 18456, 18452}
# Oracle ORA-/DPY- codes.
_ORACLE_TRANSIENT = {
    "ORA-00054", "ORA-00060", "ORA-01033", "ORA-01034", "ORA-01089", "ORA-03113", "ORA-03114", "ORA-03135",
    "ORA-08177", "ORA-12170", "ORA-12537", "ORA-12541", "ORA-12547", "ORA-30006", "DPY-4011", "DPY-6005",
}
_ORACLE_TERMINAL = {
    "ORA-00904", "ORA-00942", "ORA-00001", "ORA-01017", "ORA-01031", "ORA-28000", "ORA-28001", "ORA-01005",
}
_SQLITE_TRANSIENT = {"SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_IOERR", "SQLITE_PROTOCOL", "SQLITE_FULL"}
_SQLITE_TERMINAL = {
    "SQLITE_ERROR", "SQLITE_CONSTRAINT", "SQLITE_CORRUPT", "SQLITE_NOTADB", "SQLITE_AUTH", "SQLITE_MISMATCH",
    "SQLITE_RANGE", "SQLITE_READONLY", "SQLITE_PERM", "SQLITE_CANTOPEN", "SQLITE_TOOBIG",
}
# Connection failures that carry no code (libpq before a session exists): rejected credentials and
# unknown databases are terminal, everything else about reaching the server is transient.
_AUTH_OR_SETUP_PHRASES = (
    "password authentication failed",
    "authentication failed",
    "no pg_hba.conf entry",
    "access denied",
    "login failed",
    "permission denied",
    "does not exist",
    "invalid username/password",
)
# DB-API exception classes whose meaning does not depend on the driver.
_DBAPI_TERMINAL_CLASSES = {"IntegrityError", "ProgrammingError", "DataError", "NotSupportedError"}
_MAX_CHAIN = 6


def _module_root(error: BaseException) -> str:
    return type(error).__module__.split(".", 1)[0]


def _class_names(error: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(error).__mro__}


def _sqlstate_verdict(code: str | None) -> Verdict:
    if not code:
        return Verdict.UNKNOWN
    code = code.upper()
    if code in _SQLSTATE_TRANSIENT or code[:2] in _SQLSTATE_TRANSIENT_CLASSES:
        return Verdict.TRANSIENT
    if code[:2] in _SQLSTATE_TERMINAL_CLASSES:
        return Verdict.TERMINAL
    return Verdict.UNKNOWN


def _code_verdict(code: Any, transient: set[Any], terminal: set[Any]) -> Verdict:
    if code in transient:
        return Verdict.TRANSIENT
    if code in terminal:
        return Verdict.TERMINAL
    return Verdict.UNKNOWN


def _first_int_arg(error: BaseException) -> int | None:
    code = getattr(error, "errno", None)
    if isinstance(code, int):
        return code
    first = error.args[0] if error.args else None
    if isinstance(first, tuple) and first:
        first = first[0]  # pymssql: ((code, message), ...)
    return first if isinstance(first, int) else None


def _connection_phrase_verdict(error: BaseException) -> Verdict:
    text = str(error).lower()
    if any(phrase in text for phrase in _AUTH_OR_SETUP_PHRASES):
        return Verdict.TERMINAL
    return Verdict.TRANSIENT


def _postgres(error: BaseException) -> Verdict:
    code = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    verdict = _sqlstate_verdict(code)
    if verdict is Verdict.UNKNOWN and not code and "OperationalError" in _class_names(error):
        return _connection_phrase_verdict(error)
    return verdict


def _mysql(error: BaseException) -> Verdict:
    return _code_verdict(_first_int_arg(error), _MYSQL_TRANSIENT, _MYSQL_TERMINAL)


def _mssql(error: BaseException) -> Verdict:
    return _code_verdict(_first_int_arg(error), _MSSQL_TRANSIENT, _MSSQL_TERMINAL)


def _pyodbc(error: BaseException) -> Verdict:
    state = error.args[0] if error.args and isinstance(error.args[0], str) else None
    return _sqlstate_verdict(state)


def _oracle(error: BaseException) -> Verdict:
    detail = error.args[0] if error.args else None
    code = getattr(detail, "full_code", None)
    verdict = _code_verdict(code, _ORACLE_TRANSIENT, _ORACLE_TERMINAL)
    if verdict is Verdict.UNKNOWN and getattr(detail, "isrecoverable", False):
        return Verdict.TRANSIENT
    return verdict


def _sqlite(error: BaseException) -> Verdict:
    name = getattr(error, "sqlite_errorname", None)
    if isinstance(name, str):
        base = "_".join(name.split("_")[:2])  # SQLITE_BUSY_RECOVERY -> SQLITE_BUSY
        verdict = _code_verdict(base, _SQLITE_TRANSIENT, _SQLITE_TERMINAL)
        if verdict is not Verdict.UNKNOWN:
            return verdict
    text = str(error).lower()
    if "database is locked" in text or "database table is locked" in text:
        return Verdict.TRANSIENT
    return Verdict.UNKNOWN


def _kafka(error: BaseException) -> Verdict:
    detail = error.args[0] if error.args else None
    if detail is None or not hasattr(detail, "retriable"):
        return Verdict.UNKNOWN
    name = str(detail.name())
    if detail.fatal() or "AUTHENTICATION" in name or "AUTHORIZATION" in name:
        return Verdict.TERMINAL
    return Verdict.TRANSIENT if detail.retriable() else Verdict.UNKNOWN


def _clickhouse(error: BaseException) -> Verdict:
    text = str(error)
    if "AUTHENTICATION_FAILED" in text or "Code: 516" in text or "UNKNOWN_TABLE" in text:
        return Verdict.TERMINAL
    if "OperationalError" in _class_names(error):
        return Verdict.TRANSIENT
    return Verdict.UNKNOWN


_DRIVERS = {
    "psycopg": _postgres,
    "psycopg2": _postgres,
    "MySQLdb": _mysql,
    "pymysql": _mysql,
    "mysql": _mysql,
    "pymssql": _mssql,
    "pyodbc": _pyodbc,
    "oracledb": _oracle,
    "cx_Oracle": _oracle,
    "sqlite3": _sqlite,
    "confluent_kafka": _kafka,
    "cimpl": _kafka,
    "clickhouse_connect": _clickhouse,
}


def _own_verdict(error: BaseException) -> Verdict:
    """The verdict ``error`` itself supports, without looking at its causes."""
    if isinstance(error, SyncError):
        return Verdict.TERMINAL if error.terminal else Verdict.TRANSIENT
    if "ValidationError" in _class_names(error) and _module_root(error) in ("pydantic", "pydantic_core"):
        return Verdict.TERMINAL
    if "InvalidTag" in _class_names(error) and _module_root(error) == "cryptography":
        return Verdict.TERMINAL  # ciphertext and key do not match: a wrong key, not bad luck
    classify_driver = _DRIVERS.get(_module_root(error))
    if classify_driver is not None:
        verdict = classify_driver(error)
        if verdict is not Verdict.UNKNOWN:
            return verdict
        if _class_names(error) & _DBAPI_TERMINAL_CLASSES:
            return Verdict.TERMINAL
    if isinstance(error, (ConnectionError, TimeoutError, socket.gaierror)):
        return Verdict.TRANSIENT
    return Verdict.UNKNOWN


def classify(error: BaseException) -> Verdict:
    """Terminal, transient or unknown. Follows explicit causes (``raise ... from``) and SQLAlchemy's
    ``.orig`` when ``error`` alone says nothing; never raises."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen and len(seen) < _MAX_CHAIN:
        seen.add(id(current))
        try:
            verdict = _own_verdict(current)
        except Exception:  # a classifier must never turn a failure into a different failure
            verdict = Verdict.UNKNOWN
        if verdict is not Verdict.UNKNOWN:
            return verdict
        wrapped = getattr(current, "orig", None)
        current = wrapped if isinstance(wrapped, BaseException) else current.__cause__
    return Verdict.UNKNOWN


def is_transient(error: BaseException) -> bool:
    """True when waiting and retrying may let the same work succeed."""
    return classify(error) is Verdict.TRANSIENT


def is_terminal(error: BaseException) -> bool:
    """True when retrying cannot help and the task should fail at once."""
    return classify(error) is Verdict.TERMINAL


class SyncRetryPolicy(ExceptionRetryPolicy):
    """Explicit rules first (first match wins); then :func:`classify`: terminal fails at once, transient
    retries (within the task's ``retries``), unknown follows the policy's ``default`` action."""

    def evaluate(
        self, exception: BaseException, try_number: int, max_tries: int, context: Any = None
    ) -> RetryDecision:
        if any(rule.matches(exception) for rule in self.rules):
            return super().evaluate(exception, try_number, max_tries, context)
        verdict = classify(exception)
        name = type(exception).__name__
        if verdict is Verdict.TERMINAL:
            return RetryDecision.fail(reason=f"{name} is terminal: retrying cannot help")
        if verdict is Verdict.TRANSIENT:
            return RetryDecision.retry(reason=f"{name} is transient: retrying")
        return RetryDecision(action=self.default)


def build_retry_policy(extra_rules: Sequence[RetryRule] = ()) -> SyncRetryPolicy:
    """The retry policy every pipeline task gets (pass it as ``retry_policy`` in ``default_args``).

    ``extra_rules`` are checked first, so a pipeline can override the classification of an exception.
    """
    return SyncRetryPolicy(rules=list(extra_rules))
