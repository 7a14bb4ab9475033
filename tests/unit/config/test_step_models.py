"""YAML step bodies for validate, mask, encrypt and schema_map: accepted forms and clear refusals."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import textwrap

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from airflow_provider_sync.config.identifiers import ConnectionId, Identifier, QualifiedName
from airflow_provider_sync.config.steps import step_specs
from airflow_provider_sync.config.steps.encrypt import EncryptStep
from airflow_provider_sync.config.steps.mask import HashMask, MaskStep, PartialMask
from airflow_provider_sync.config.steps.schema_map import SchemaMapStep
from airflow_provider_sync.config.steps.validate import ValidateStep
from airflow_provider_sync.core.secret_guard import looks_like_key_material

BASE64_KEY = base64.b64encode(os.urandom(32)).decode()
BASE64_40 = base64.b64encode(b"x" * 40).decode()


def body(text: str) -> object:
    return yaml.safe_load(textwrap.dedent(text))


def error_text(model: type[BaseModel], text: str) -> str:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body(text))
    return str(caught.value)


def test_registered_with_operator_paths() -> None:
    specs = step_specs()
    for name, model, operator in (
        ("validate", ValidateStep, "ValidateOperator"),
        ("mask", MaskStep, "MaskOperator"),
        ("encrypt", EncryptStep, "EncryptOperator"),
        ("schema_map", SchemaMapStep, "SchemaMapOperator"),
    ):
        assert specs[name].model is model
        assert specs[name].operator == f"airflow_provider_sync.operators.steps.{operator}"
        assert specs[name].summary


@pytest.mark.parametrize("model", [ValidateStep, MaskStep, EncryptStep, SchemaMapStep])
def test_module_examples_are_valid(model: type[BaseModel]) -> None:
    module = sys.modules[model.__module__]
    after = (module.__doc__ or "").split("::", 1)[1].splitlines()
    block = []
    for line in after[1:]:
        if line.strip() and not line.startswith("    "):
            break
        block.append(line)
    example = "\n".join(block)
    step_name = next(name for name, spec in step_specs().items() if spec.model is model)
    parsed = yaml.safe_load(textwrap.dedent(example))
    model.model_validate(parsed[0][step_name])


def test_validate_body_forms() -> None:
    step = ValidateStep.model_validate(
        body("""
        rules:
          email: {not_null: true, email: true, on_invalid: drop}
          status: {in: [new, paid]}
          phone: {phone: {default_country_code: "44"}}
          name: {length: 3}
          created: {date_range: {min: 2020-01-01, max: now}}
        """)
    )
    assert step.on_invalid == "quarantine"
    assert step.rules["status"].allowed == ["new", "paid"]
    assert step.rules["email"].rule_names() == ["not_null", "email"]
    assert step.rules["created"].date_range is not None
    assert step.model_dump(by_alias=True)["rules"]["status"]["in"] == ["new", "paid"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rules: {email: {emial: true}}", "emial"),
        ("rules: {email: {}}", "no rule given"),
        ("rules: {'1bad': {not_null: true}}", "is not a valid name"),
        ("rules: {a: {in: []}}", "at least 1 item"),
        ("rules: {a: {min: 5, max: 1}}", "minimum (5.0) is greater than maximum (1.0)"),
        ("rules: {a: {min: 1, range: [0, 2]}}", "either range"),
        ("rules: {a: {regex: '(unclosed'}}", "does not compile"),
        ("rules: {a: {type: varchar2}}", "unknown type 'varchar2'"),
        ("rules: {a: {length: {min: 3, max: 1}}}", "length min (3) is greater than max (1)"),
        ("rules: {a: {not_null: true, on_invalid: explode}}", "'fail', 'drop', 'quarantine' or 'warn'"),
        ("rules: {a: {not_null: true}}\nmax_invalid_ratio: 1.5", "less than or equal to 1"),
        ("on_invalid: drop", "at least one entry under rules or expressions"),
        ("expressions: [{name: e, expression: 'os.system(1)'}]", "calls an unknown function"),
        ("expressions: [{name: e, expression: 'a > 1'}, {name: e, expression: 'b > 1'}]", "repeated: ['e']"),
        ("rules: {a: {phone: {default_country_code: '+44'}}}", "should match pattern"),
    ],
)
def test_validate_body_errors(text: str, expected: str) -> None:
    assert expected in error_text(ValidateStep, text)


def test_mask_body_forms() -> None:
    step = MaskStep.model_validate(
        body("""
        secret_conn_id: mask_secret
        columns:
          email: email
          notes: null
          card: {strategy: partial, keep_first: 0, keep_last: 4}
          password: hash
          token: redact
        """)
    )
    assert step.columns["notes"].strategy == "null"
    assert isinstance(step.columns["card"], PartialMask)
    assert isinstance(step.columns["password"], HashMask)  # a column may be called password


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("columns: {email: scramble}", "does not match any of the expected tags"),
        ("columns: {email: hash}", "need a secret: set secret_conn_id"),
        ("columns: {a: {strategy: partial, keep_last: -1}}", "greater than or equal to 0"),
        ("columns: {a: {strategy: partial, mask_char: '**'}}", "at most 1 character"),
        ("columns: {a: {strategy: phone, keep: 2}}", "keep"),
        ("columns: {}", "at least 1 item"),
        ("columns: {a: hash}\nsecret: hunter2hunter2", "'secret': keys and secrets must not be written"),
        ("columns: {a: {strategy: hash, salt: pepper}}\nsecret_conn_id: s", "'columns.a.salt'"),
        (
            "columns: {a: {strategy: replace, value: 0123456789abcdef0123456789abcdef}}",
            "looks like key material",
        ),
        ("columns: {a: hash}\nsecret_conn_id: 'no spaces allowed'", "should match pattern"),
    ],
)
def test_mask_body_errors(text: str, expected: str) -> None:
    assert expected in error_text(MaskStep, text)


def test_encrypt_body_forms() -> None:
    step = EncryptStep.model_validate(
        body("""
        keyring_conn_id: pii_keyring
        associated_table: sales.orders
        columns:
          ssn: randomized
          email: deterministic
          note: null
          key: {mode: deterministic, context: crm.key}
        """)
    )
    assert step.columns["ssn"].mode == "randomized"
    assert step.columns["note"].mode == "randomized"
    assert step.columns["key"].context == "crm.key"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("columns: {a: randomized}", "keyring_conn_id\n  Field required"),
        ("keyring_conn_id: k\ncolumns: {a: scrambled}", "'randomized' or 'deterministic'"),
        (
            f"keyring_conn_id: k\ncolumns: {{a: randomized}}\nkey: {BASE64_KEY}",
            "'key': keys and secrets must not be written in the pipeline file; store them in an Airflow "
            "connection (or secrets backend) and reference it with 'keyring_conn_id'",
        ),
        (
            f"keyring_conn_id: k\ncolumns: {{a: {{mode: randomized, keys: [{os.urandom(16).hex()}]}}}}",
            "'columns.a.keys'",
        ),
        (
            f"keyring_conn_id: k\ncolumns: {{a: randomized}}\nassociated_table: {BASE64_40}",
            "looks like key material",
        ),
        ("keyring_conn_id: k\ncolumns: {a: {mode: randomized, context: 'no/slash'}}", "should match pattern"),
        ("keyring_conn_id: k\ncolumns: {a: randomized}\nassociated_table: '1x.y'", "'1x' is not a valid"),
    ],
)
def test_encrypt_body_errors(text: str, expected: str) -> None:
    assert expected in error_text(EncryptStep, text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{}", "schema_map does nothing"),
        ("cast: {a: money}", "unknown type 'money'"),
        ("derive: {x: 'import os'}", "derive.x: expression 'import os' is not valid syntax"),
        ("rename: {a: c, b: c}", "rename maps several columns to ['c']"),
        ("select: [a]\ndrop: [a]", "both selected and dropped"),
        ("split: {a: {into: [b]}}", "at least 2 items"),
        ("normalize: {a: titlecase}", "'trim', 'lower', 'upper', 'email' or 'phone'"),
        ("lookup: [{conn_id: c, table: t, key: k}]", "columns\n  Field required"),
        (
            "lookup: [{conn_id: c, table: t, key: k, columns: [a], on_missing: skip}]",
            "'fail', 'null' or 'quarantine'",
        ),
        ("on_cast_error: ignore\ncast: {a: int}", "'fail', 'null' or 'quarantine'"),
        ("defaults: {a: [1, 2]}", "defaults.a"),
    ],
)
def test_schema_map_body_errors(text: str, expected: str) -> None:
    assert expected in error_text(SchemaMapStep, text)


def test_json_schemas_carry_patterns_and_descriptions() -> None:
    for model in (ValidateStep, MaskStep, EncryptStep, SchemaMapStep):
        schema = model.model_json_schema()
        assert schema["additionalProperties"] is False
        text = str(schema)
        assert "description" in text
    validate_schema = str(ValidateStep.model_json_schema())
    assert "^[A-Za-z_][A-Za-z0-9_ $#-]{0,127}$" in validate_schema
    assert "'in'" in validate_schema


def test_identifier_types() -> None:
    from pydantic import TypeAdapter

    identifier = TypeAdapter(Identifier)
    for good in ("a", "_x", "Order Id", "col$1", "a#b-c", "x" * 128):
        assert identifier.validate_python(good) == good
    for bad in ("", "1a", "a.b", "a;drop", "x" * 129, "naïve"):
        with pytest.raises(ValidationError, match="not a valid name"):
            identifier.validate_python(bad)
    assert TypeAdapter(QualifiedName).validate_python("db.sales.orders") == "db.sales.orders"
    with pytest.raises(ValidationError):
        TypeAdapter(QualifiedName).validate_python("a.b.c.d")
    assert TypeAdapter(ConnectionId).validate_python("aws_default-1.x") == "aws_default-1.x"


@pytest.mark.parametrize(
    ("text", "is_key"),
    [
        (base64.b64encode(os.urandom(32)).decode(), True),
        (os.urandom(16).hex(), True),
        ("customer_account_identifier_number_x", False),
        ("CustomerAccountIdentifierNumberX", False),
        ("short", False),
        ("a sentence with spaces that is long enough to matter", False),
    ],
)
def test_key_material_heuristic(text: str, is_key: bool) -> None:
    assert looks_like_key_material(text) is is_key


def test_config_modules_do_not_load_pyarrow_or_cryptography() -> None:
    code = (
        "import sys\n"
        "from airflow_provider_sync.config.steps import step_specs\n"
        "step_specs()\n"
        "import airflow_provider_sync.config.identifiers\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('pyarrow', 'cryptography')]\n"
        "print(loaded)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("model", [MaskStep, EncryptStep])
def test_inline_key_never_appears_in_the_validation_error(model: type[BaseModel]) -> None:
    data = {
        "keyring_conn_id": "k",
        "secret_conn_id": "s",
        "columns": {"a": {"strategy": "hash"} if model is MaskStep else "randomized"},
        "secret": "hunter2-but-longer",
        "options": {"nested": BASE64_KEY},
    }
    if model is EncryptStep:
        del data["secret_conn_id"]
    else:
        del data["keyring_conn_id"]
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    shown = str(caught.value) + repr(caught.value.errors())
    assert "hunter2" not in shown and BASE64_KEY not in shown
    assert "must not be written in the pipeline file" in shown
