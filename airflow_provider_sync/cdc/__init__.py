"""Change data capture: read a database's change log into staged change batches and apply them to a
target exactly once.

The database-specific captures live with the other per-database code in ``dialects/``
(``postgres_capture.py``: logical decoding with ``pgoutput``; ``mysql_capture.py`` and ``mysql_binlog.py``:
the row binlog). This package holds what they share: the staged change-batch shape (:mod:`.changes`), the
``pgoutput`` decoder (:mod:`.pgoutput`, pure), the apply (:mod:`.apply`) and the per-database runners the
operators call (:mod:`.runner`).
"""
