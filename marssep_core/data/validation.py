"""Great Expectations suites for the catalog, the clean splits and the test pairs.

Each suite validates one or more pandas tables (some derived, e.g. one row per origin, so that a
failure lists the offending origin or class by name). ``validate_tables`` returns a JSON-able
report; ``ValidationFailed`` carries a readable multi-line summary naming every failed
expectation and its unexpected values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd


class ValidationFailed(RuntimeError):
    """A table broke one or more expectations; ``report`` has the details."""

    def __init__(self, summary: str, report: dict[str, Any]):
        super().__init__(summary)
        self.report = report


@dataclass
class TableCheck:
    """Expectations on one table; ``key_columns`` name the rows in failure reports."""

    name: str
    frame: pd.DataFrame
    expectations: list[Any] = field(default_factory=list)
    key_columns: Sequence[str] = ()


_CONTEXT: Any = None


def _context() -> Any:
    global _CONTEXT
    if _CONTEXT is None:
        import great_expectations as gx  # heavy import (~3 s): only when validating

        _CONTEXT = gx.get_context(mode="ephemeral")
        _CONTEXT.variables.progress_bars = {"globally": False, "metric_calculations": False}
        _CONTEXT.data_sources.add_pandas("marssep")
    return _CONTEXT


def validate_tables(suite_name: str, checks: Sequence[TableCheck]) -> dict[str, Any]:
    """Run every check; return the report, raising ``ValidationFailed`` if anything failed."""
    import great_expectations as gx

    context = _context()
    source = context.data_sources.get("marssep")
    report: dict[str, Any] = {"suite": suite_name, "success": True, "tables": {}}
    failures: list[str] = []
    for check in checks:
        asset_name = f"{suite_name}.{check.name}"
        try:
            asset = source.get_asset(asset_name)
        except LookupError:
            asset = source.add_dataframe_asset(asset_name)
        batch_definition = asset.add_batch_definition_whole_dataframe(f"{asset_name}.{len(asset.batch_definitions)}")
        suite = gx.ExpectationSuite(name=f"{asset_name}.suite.{len(asset.batch_definitions)}")
        for expectation in check.expectations:
            suite.add_expectation(expectation)
        result_format: dict[str, Any] = {"result_format": "COMPLETE"}
        if check.key_columns:
            result_format["unexpected_index_column_names"] = list(check.key_columns)
        batch = batch_definition.get_batch(batch_parameters={"dataframe": check.frame.reset_index(drop=True)})
        result = batch.validate(suite, result_format=result_format)
        table_report = []
        for item in result.results:
            config = item.expectation_config
            kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
            entry = {"expectation": config.type, "kwargs": _jsonable(kwargs), "success": bool(item.success)}
            if not item.success:
                entry["unexpected"] = _unexpected(item.result, check.key_columns)
                failures.append(f"[{check.name}] {config.type} {kwargs}: {entry['unexpected']}")
            table_report.append(entry)
        report["tables"][check.name] = {"rows": len(check.frame), "results": table_report}
        report["success"] &= bool(result.success)
    if failures:
        summary = f"{suite_name}: {len(failures)} expectation(s) failed:\n  " + "\n  ".join(failures)
        raise ValidationFailed(summary, report)
    return report


def _unexpected(result: dict[str, Any], key_columns: Sequence[str], limit: int = 20) -> Any:
    """The offending rows by key (origin, class, clip id) where known, else the bad values."""
    if key_columns and result.get("unexpected_index_list"):
        rows = result["unexpected_index_list"][:limit]
        return [{k: row.get(k) for k in key_columns} | _value_of(row, key_columns) for row in rows]
    if "partial_unexpected_list" in result:
        return _jsonable(result["partial_unexpected_list"][:limit])
    return _jsonable({k: v for k, v in result.items() if k in ("observed_value", "details")})


def _value_of(row: dict[str, Any], key_columns: Sequence[str]) -> dict[str, Any]:
    return {k: _jsonable(v) for k, v in row.items() if k not in key_columns}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
