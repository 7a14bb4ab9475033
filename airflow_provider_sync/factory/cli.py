"""``airflow-sync``: validate pipeline files, export their JSON Schema, render DAGs, manage watermarks."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from airflow_provider_sync.errors import ConfigError, SyncError

Command = Callable[[argparse.Namespace], int]


def _pipeline_paths(targets: list[str]) -> tuple[list[Path], int]:
    """Every pipeline file under ``targets`` once (a file named twice is checked once), and how many
    targets do not exist."""
    from airflow_provider_sync.factory.loader import pipeline_files

    found: dict[Path, Path] = {}
    missing = 0
    for target in targets:
        if not Path(target).exists():
            print(f"{target}: no such file or folder", file=sys.stderr)
            missing += 1
            continue
        for path in pipeline_files(target):
            found.setdefault(path.resolve(), path)
    return list(found.values()), missing


def cmd_validate(args: argparse.Namespace) -> int:
    from airflow_provider_sync.config.folder import shared_target_errors
    from airflow_provider_sync.config.resolve import Pipeline, load_pipeline

    paths, failures = _pipeline_paths(args.paths or ["dag_configs"])
    errors: dict[str, ConfigError] = {}
    pipelines: list[Pipeline] = []
    for path in paths:
        try:
            pipelines.append(load_pipeline(path))
        except ConfigError as error:
            errors[str(path)] = error
    # Checked across every file given, so two files writing one table are both reported.
    errors.update(shared_target_errors(pipelines))
    valid = {pipeline.path: pipeline for pipeline in pipelines}
    for path in paths:
        problem = errors.get(str(path))
        if problem is not None:
            print(f"✗ {path}\n{problem}\n", file=sys.stderr)
            continue
        pipeline = valid[str(path)]
        tables = ", ".join(table.name for table in pipeline.tables)
        print(f"✓ {path}: DAG {pipeline.dag_id!r} ({tables})")
    failures += len(errors)
    print(f"{len(paths)} file(s) checked, {len(errors)} invalid")
    return 1 if failures else 0


def cmd_schema(args: argparse.Namespace) -> int:
    from airflow_provider_sync.config.schema import pipeline_json_schema_text

    text = pipeline_json_schema_text()
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from airflow_provider_sync.config.resolve import load_pipeline
    from airflow_provider_sync.factory.builder import build_dag
    from airflow_provider_sync.factory.render import render_dag

    try:
        pipeline = load_pipeline(args.file)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 1
    print(render_dag(build_dag(pipeline)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="airflow-sync", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    validate = commands.add_parser("validate", help="check pipeline files; exit 1 if any is invalid")
    validate.add_argument("paths", nargs="*", help="files or folders (default: dag_configs)")
    validate.set_defaults(handler=cmd_validate)

    schema = commands.add_parser("schema", help="print the JSON Schema of pipeline files")
    schema.add_argument("-o", "--output", help="write to this file instead of stdout")
    schema.set_defaults(handler=cmd_schema)

    render = commands.add_parser("render", help="print the task tree of the DAG a file defines")
    render.add_argument("file")
    render.set_defaults(handler=cmd_render)

    from airflow_provider_sync.factory.cli_watermark import add_watermark_commands

    add_watermark_commands(commands)
    from airflow_provider_sync.factory.cli_crypto import add_crypto_commands

    add_crypto_commands(commands)
    from airflow_provider_sync.factory.cli_status import add_status_command

    add_status_command(commands)
    from airflow_provider_sync.factory.cli_init import add_init_commands

    add_init_commands(commands)
    from airflow_provider_sync.factory.cli_forget import add_forget_command

    add_forget_command(commands)
    from airflow_provider_sync.factory.cli_cdc import add_cdc_commands

    add_cdc_commands(commands)
    from airflow_provider_sync.factory.cli_subset import add_subset_command

    add_subset_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Command = args.handler
    try:
        return handler(args)
    except SyncError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
