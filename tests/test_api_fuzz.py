"""Schemathesis against /api/v1/openapi.json: generated requests, valid and invalid, as a municipal
user and as the help desk. No answer may be a 5xx, and every answer must match the document
(status codes, content type, body schema). Fixed seed (derandomised), bounded in examples."""
from __future__ import annotations

import time

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance, response_schema_conformance, status_code_conformance,
)

from app.extensions import db
from app.services import cases as case_service
from app.services import questions as question_service

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES_PER_OPERATION = 80


@pytest.fixture
def world(app, make_user, make_question, token_for):
    """Some of everything, so that generated ids sometimes hit real questions and cases."""
    asker = make_user("municipal", "呉市")
    desk = make_user("helpdesk")
    for n in range(3):
        question = make_question(asker, title=f"VPN の相談 {n}", sharing_consent="all")
        answer = question_service.post_answer(desk, question, {"body": f"回答 {n}"})
        db.session.commit()
        case = question_service.resolve_question(desk, question, answer.id)
        if n:
            case_service.publish_case(desk, case, "all")
        db.session.commit()
    return {"municipal": token_for(asker), "helpdesk": token_for(desk)}


@pytest.mark.parametrize("role", ["municipal", "helpdesk"])
def test_generated_requests_never_fail_and_always_match_the_document(app, world, role):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    headers = world[role]
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 13
    started = time.monotonic()
    for operation, mode in [(op, mode) for op in operations for mode in GenerationMode]:
        @settings(max_examples=EXAMPLES_PER_OPERATION, derandomize=True, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case):
            with app.app_context():
                response = case.call(headers=headers)
            case.validate_response(response, checks=CHECKS)

        check()
    assert time.monotonic() - started < 240  # bounded: about a minute on a laptop
