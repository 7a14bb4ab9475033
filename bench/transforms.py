"""Throughput of the in-flight transforms: values per second over 1M values each.

Run: ``python bench/transforms.py [--values N] [--batch-size N]``. Every transform runs over the same
synthetic column(s) in batches, as the operators do; the figure is the best of ``--repeat`` runs so that
noise from other processes on the machine counts less.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import time
from collections.abc import Callable

import pyarrow as pa

from airflow_provider_sync.config.steps.encrypt import EncryptStep
from airflow_provider_sync.config.steps.mask import MaskStep
from airflow_provider_sync.config.steps.schema_map import SchemaMapStep
from airflow_provider_sync.config.steps.validate import ValidateStep
from airflow_provider_sync.core.encrypt import Encryptor, decrypt_batch
from airflow_provider_sync.core.keyring import Keyring
from airflow_provider_sync.core.mask import Masker
from airflow_provider_sync.core.schema_map import SchemaMapper
from airflow_provider_sync.core.validate import Validator

SECRET = os.urandom(32)
KEYRING = Keyring.from_json(
    json.dumps({"primary": "k1", "keys": {"k1": base64.b64encode(os.urandom(32)).decode()}})
)


def make_batches(total: int, batch_size: int) -> list[pa.RecordBatch]:
    batches = []
    for start in range(0, total, batch_size):
        ids = range(start, min(start + batch_size, total))
        batches.append(
            pa.record_batch(
                {
                    "id": pa.array(ids, pa.int64()),
                    "email": [f"customer.{i}@example{i % 97}.com" for i in ids],
                    "phone": [f"+44 20 7946 {i % 10000:04d}" for i in ids],
                    "amount": pa.array([(i % 100_000) / 100 for i in ids], pa.float64()),
                    "amount_text": [f"{(i % 100_000) / 100:.2f}" for i in ids],
                    "country": ["GB" if i % 3 else "DE" for i in ids],
                    "duration_ms": pa.array([i % 3_600_000 for i in ids], pa.int64()),
                }
            )
        )
    return batches


def validate_step(rules: dict[str, object]) -> Callable[[pa.RecordBatch], object]:
    validator = Validator(ValidateStep.model_validate({"rules": rules}))
    return validator.validate


def mask_step(columns: dict[str, object]) -> Callable[[pa.RecordBatch], object]:
    return Masker(MaskStep.model_validate({"columns": columns, "secret_conn_id": "s"}), SECRET).mask


def map_step(
    body: dict[str, object], lookups: dict[str, pa.Table] | None = None
) -> Callable[[pa.RecordBatch], object]:
    mapper = SchemaMapper(SchemaMapStep.model_validate(body))
    return lambda batch: mapper.apply(batch, lookups)


def encrypt_step(mode: str) -> Encryptor:
    step = EncryptStep.model_validate({"keyring_conn_id": "k", "columns": {"email": mode}})
    return Encryptor(step, KEYRING, "orders")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    batches = make_batches(args.values, args.batch_size)
    gcm, siv = encrypt_step("randomized"), encrypt_step("deterministic")
    encrypted = [gcm.encrypt(b) for b in batches]
    reference = pa.table({"iso2": ["GB", "DE", "FR"], "name": ["United Kingdom", "Germany", "France"]})
    lookup = {"conn_id": "c", "table": "countries", "key": "country", "ref_key": "iso2", "columns": ["name"]}

    # name -> (fresh transform per repeat, input batches); unique keeps state, so it is rebuilt each run.
    cases: dict[str, tuple[Callable[[], Callable[[pa.RecordBatch], object]], list[pa.RecordBatch]]] = {
        "validate email": (lambda: validate_step({"email": {"email": True}}), batches),
        "validate range": (lambda: validate_step({"amount": {"min": 0, "max": 1000}}), batches),
        "validate phone (E.164)": (lambda: validate_step({"phone": {"phone": True}}), batches),
        "validate unique": (lambda: validate_step({"id": {"unique": True}}), batches),
        "validate expression": (
            lambda: (
                Validator(
                    ValidateStep.model_validate(
                        {
                            "expressions": [
                                {"name": "e", "expression": "amount >= 0 and duration_ms < 4000000"}
                            ]
                        }
                    )
                ).validate
            ),
            batches,
        ),
        "mask email": (lambda: mask_step({"email": "email"}), batches),
        "mask partial": (lambda: mask_step({"email": {"strategy": "partial", "keep_last": 4}}), batches),
        "mask phone": (lambda: mask_step({"phone": "phone"}), batches),
        "mask redact": (lambda: mask_step({"email": "redact"}), batches),
        "mask hash (HMAC-SHA-256)": (lambda: mask_step({"email": "hash"}), batches),
        "mask tokenize": (lambda: mask_step({"email": "tokenize"}), batches),
        "encrypt AES-256-GCM": (lambda: gcm.encrypt, batches),
        "encrypt AES-SIV": (lambda: siv.encrypt, batches),
        "decrypt AES-256-GCM": (lambda: lambda b: decrypt_batch(b, KEYRING, gcm.contexts), encrypted),
        "schema_map cast text->decimal": (
            lambda: map_step({"cast": {"amount_text": "decimal(12,2)"}}),
            batches,
        ),
        "schema_map derive": (lambda: map_step({"derive": {"seconds": "duration_ms / 1000"}}), batches),
        "schema_map normalize email": (lambda: map_step({"normalize": {"email": "email"}}), batches),
        "schema_map normalize phone": (lambda: map_step({"normalize": {"phone": "phone"}}), batches),
        "schema_map lookup": (lambda: map_step({"lookup": [lookup]}, {"c:countries": reference}), batches),
    }
    total = sum(b.num_rows for b in batches)
    print(f"{total:,} values per transform, batches of {args.batch_size:,}, best of {args.repeat}")
    for name, (factory, inputs) in cases.items():
        best = float("inf")
        for _ in range(args.repeat):
            transform = factory()
            started = time.perf_counter()
            for batch in inputs:
                transform(batch)
            best = min(best, time.perf_counter() - started)
        print(f"{name:34s} {total / best:>14,.0f} values/s")


if __name__ == "__main__":
    main()
