"""Demo data for scripts/demo.sh: an SQLite "shop" database whose orders change between runs.

    python scripts/demo_data.py seed   SHOP_DB            # 1,000 orders
    python scripts/demo_data.py change SHOP_DB            # update 25 orders, add 10
    python scripts/demo_data.py compare SHOP_DB WAREHOUSE_DB
"""

from __future__ import annotations

import hashlib
import random
import sqlite3
import sys
from datetime import datetime, timedelta, timezone

STATUSES = ("new", "paid", "shipped", "cancelled")


def _stamp(moment: datetime) -> str:
    # The text form Python's sqlite3 module has always written: microseconds only when not zero.
    return moment.replace(tzinfo=None).isoformat(sep=" ")


def seed(path: str, count: int = 1000) -> None:
    rng = random.Random(7)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE IF EXISTS orders")
        db.execute(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_email TEXT NOT NULL, amount NUMERIC(12,2),"
            " status TEXT, note TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)"
        )
        rows = []
        for order_id in range(1, count + 1):
            created = start + timedelta(minutes=order_id)
            # Several orders share an updated_at so the tie-break on id matters.
            updated = start + timedelta(minutes=order_id - order_id % 5)
            rows.append((order_id, f"customer{rng.randint(1, 300)}@example.com", round(rng.uniform(5, 900), 2),
                         rng.choice(STATUSES), "né 🚚" if order_id % 97 == 0 else None, _stamp(created),
                         _stamp(updated)))
        db.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    print(f"seeded {count} orders into {path}")


def change(path: str) -> None:
    now = datetime.now(timezone.utc)
    with sqlite3.connect(path) as db:
        (last_id,) = db.execute("SELECT MAX(id) FROM orders").fetchone()
        updated = db.execute(
            "UPDATE orders SET status = 'shipped', updated_at = ? WHERE id IN "
            "(SELECT id FROM orders WHERE status = 'paid' ORDER BY id LIMIT 25)",
            (_stamp(now),),
        ).rowcount
        for order_id in range(last_id + 1, last_id + 11):
            db.execute("INSERT INTO orders VALUES (?, ?, ?, 'new', NULL, ?, ?)",
                       (order_id, f"late{order_id}@example.com", 42.5, _stamp(now), _stamp(now)))
    print(f"changed the shop: {updated} orders updated, 10 orders added")


def _digest(path: str) -> tuple[int, str]:
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT id, customer_email, printf('%.2f', amount), status, note, updated_at FROM orders ORDER BY id"
        )
        digest, count = hashlib.sha256(), 0
        for row in rows:
            digest.update(repr(row).encode())
            count += 1
    return count, digest.hexdigest()[:16]


def compare(shop: str, warehouse: str) -> None:
    (source_rows, source_hash), (target_rows, target_hash) = _digest(shop), _digest(warehouse)
    verdict = "IDENTICAL" if (source_rows, source_hash) == (target_rows, target_hash) else "DIFFERENT"
    print(f"shop: {source_rows} rows (sha {source_hash}); warehouse: {target_rows} rows (sha {target_hash}) "
          f"→ {verdict}")
    if verdict != "IDENTICAL":
        raise SystemExit(1)


if __name__ == "__main__":
    command, *paths = sys.argv[1:]
    {"seed": seed, "change": change, "compare": compare}[command](*paths)
