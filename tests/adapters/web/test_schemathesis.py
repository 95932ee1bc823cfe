"""Schemathesis against the running server: every operation of /schema/openapi.json, valid and
invalid input, bounded. No server error, no undocumented status, no body off its schema."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
EXAMPLES = 60
"""Examples per operation and generation mode (about 1,300 requests in all)."""


def _fuzz(base: str) -> list[str]:
    """Run every operation in both modes; return the failures (an empty list when clean)."""
    schema = schemathesis.openapi.from_url(f"{base}/schema/openapi.json")
    failures: list[str] = []
    session = requests.Session()
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: Any) -> None:
                response = case.call(base_url=base, session=session, timeout=30)
                case.validate_response(response, checks=CHECKS)

            try:
                run()
            except Unsatisfiable:
                continue  # no invalid input exists (only free-form strings): nothing to send
            except Exception as exc:  # one failure per operation and mode is enough to report
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    assert len(operations) >= 10, [o.label for o in operations]
    return failures


async def test_schemathesis_finds_nothing(serve, caplog):
    caplog.set_level(logging.WARNING)
    async with serve() as web:
        failures = await asyncio.to_thread(_fuzz, web.base)
    assert failures == [], "\n\n".join(failures)
    server_errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert server_errors == []
