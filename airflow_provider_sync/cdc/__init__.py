"""Change data capture: read a database's change log (PostgreSQL logical decoding, the MySQL/MariaDB row
binlog) into staged change batches, and apply them to a target exactly once.

Every capture writes batches of the shape :mod:`.changes` defines, so one apply path serves every source.
"""
