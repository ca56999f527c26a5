"""Schemathesis against the app: every operation, generated inputs, with and without keys.

For each operation, bounded examples (valid and invalid inputs) are sent
three times: with no credentials, as an admin (who may do everything, so
requests reach the governor) and as an operator of one tenant. Every answer
must be a documented status with a body that matches the document; none may
be a 5xx.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from exoarmur.server.openapi import document
from test_server_support import Deployment, deploy

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    home: Path = tmp_path_factory.mktemp("fuzz") / "home"
    deployed = deploy(home)
    yield deployed
    deployed.client.close()
    deployed.governor.close()


# The document needs no governor, so it is loaded at import; each call goes to the
# fixture's app. (schemathesis.pytest.from_fixture does not run under pytest 9.)
schema = schemathesis.openapi.from_dict(document())


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_within_its_contract(case: Any, deployment: Deployment) -> None:
    for who in (None, "root", "alice"):
        headers = deployment.auth(who) if who else {}
        case.call_and_validate(headers=headers, checks=CHECKS, app=deployment.client.app)
