"""The app against its own OpenAPI schema, with schemathesis: requests
generated from the schema (valid and invalid ones) never get a 500, and
every response matches what the schema says of its status, content type,
headers and body.

The caller holds every office role of the published procedure and the
``reform`` permission, and the database holds a case, so generated requests
reach past authentication into real data. The examples are few and, in CI,
derandomized like the other property tests, so a run is bounded and its
verdict is about the change.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import XUAT_NGU, Api, xuat_ngu_data

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
SCALE = int(os.environ.get("TINHGON_SCHEMATHESIS_SCALE", "1"))
"""multiply the examples, for a longer hunt by hand"""
EXAMPLES = {GenerationMode.POSITIVE: 12 * SCALE, GenerationMode.NEGATIVE: 6 * SCALE}


def test_every_operation_keeps_to_its_schema(api: Api) -> None:
    api.publish("che-do-xuat-ngu.v1")
    roles = sorted(api.services.compiled.get(_row(api)).office_roles)
    tester = api.user("tester", unit="u1", roles=roles, permissions=["reform"])
    case = api.start(tester, XUAT_NGU, xuat_ngu_data())
    api.act(tester, case["id"], "nop_ban_khai", "done")

    schema = schemathesis.openapi.from_asgi("/openapi.json", api.client.app).include(path_regex="^/api/")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 18
    failures: list[str] = []
    for operation in operations:
        for mode, examples in EXAMPLES.items():
            try:
                _explore(operation, mode, examples, tester, case["id"])
            except (Exception, BaseExceptionGroup) as exc:  # collect every operation's failures, then report them all
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    assert not failures, "\n\n".join(failures)


def _row(api: Api) -> Any:
    with api.services.store.unit(write=False) as uow:
        return uow.newest_published(XUAT_NGU)


def _explore(operation: Any, mode: GenerationMode, examples: int, headers: dict[str, str], case_id: int) -> None:
    # Path parameters are sometimes the real ones, so generated requests reach a live case and procedure.
    real: dict[str, Any] = {}
    names = {p.name for p in operation.path_parameters}
    if mode is GenerationMode.POSITIVE:
        if "case_id" in names:
            real["case_id"] = case_id
        if "code" in names:
            real["code"] = XUAT_NGU
        for name in ("version", "a", "b"):
            if name in names:
                real[name] = 1
    strategies = [operation.as_strategy(generation_mode=mode)]
    if real:
        strategies.append(operation.as_strategy(generation_mode=mode, path_parameters=real))

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=bool(os.environ.get("CI")),
        suppress_health_check=list(HealthCheck),
    )
    @given(case=st.one_of(strategies))
    def explore(case: Any) -> None:
        response = case.call(headers=headers)
        case.validate_response(response, checks=CHECKS, headers=headers)

    try:
        explore()
    except Unsatisfiable:
        assert mode is GenerationMode.NEGATIVE  # an operation without parameters has no invalid request to make


def test_the_schema_is_served_and_no_page_loads_a_cdn(api: Api) -> None:
    assert api.client.get("/openapi.json").status_code == 200
    for page in ("/docs", "/redoc"):  # FastAPI's pages load their scripts from a CDN: they are off
        assert api.client.get(page).status_code == 404
