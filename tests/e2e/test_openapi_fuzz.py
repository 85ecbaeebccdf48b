"""schemathesis against the gateway's `/openapi.json`, with all five processes running and a key of
each scope: no request, valid or not, is answered with a 5xx other than the documented 503 (no
model is configured, from the inference route) and 504 (a service did not answer in time).

Left out: the two Server-Sent Events routes (`GET /api/workflows/{run_id}/events`,
`GET /api/campaigns/{campaign_id}/events`), whose answer for a run or campaign that exists ends
only when it finishes. `stream: true` inference stays in: with no model configured the gateway
answers 503 before any stream starts.

Each operation is fuzzed with schemathesis's Hypothesis strategies under `@given`, in one test per
scope. (`schemathesis.pytest.from_fixture`, which would load the schema from a fixture, sets
`Function._nodeid`, which pytest 9.2 no longer has.)
"""

from __future__ import annotations

import re

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import APIOperation, Case, CheckContext, GenerationMode, Response
from schemathesis.errors import FailureGroup

from tests.support.api import MakeKey
from tests.support.stack import Gateway, Stack

pytestmark = pytest.mark.e2e
import collections
STATS = collections.Counter()


SCOPES = ("assistant", "workflows", "review", "admin")
NO_MODEL = {"LLM_MODEL": "", "OPENAI_BASE_URL": "", "OPENAI_API_KEY": ""}
EXAMPLES = 15  # per operation and key; keeps the module well under 2 minutes
INFERENCE = "/api/ai-assistant/inference"
STREAMS = re.compile(r"/events$")


@pytest.fixture(scope="module")
def stack() -> Stack:
    """Every service, none with a model (so inference answers its documented 503)."""
    services = ("intent", "inference", "workflow", "campaign")
    return Stack(dict.fromkeys(services, NO_MODEL), gateway_env=NO_MODEL, user="fuzzer")


@pytest.fixture(scope="module")
async def keys(make_key: MakeKey) -> dict[str, str]:
    """One key per scope, each of a user of its own."""
    return {scope: await make_key(scope, user=f"fuzz-{scope}") for scope in SCOPES}


def no_undocumented_server_error(ctx: CheckContext, response: Response, case: Case) -> None:
    """A schemathesis check: a 5xx only as 504, or as 503 from inference (no model)."""
    status = response.status_code
    if status < 500 or status == 504 or (status == 503 and case.operation.path == INFERENCE):
        return
    raise AssertionError(f"{case.operation.label} answered {status}: {response.text[:500]}")


def fuzz(operation: APIOperation, headers: dict[str, str]) -> str | None:
    """Valid and invalid requests to `operation`: the first failure, shrunk, or None."""
    cases = operation.as_strategy(GenerationMode.POSITIVE, headers=headers) | operation.as_strategy(
        GenerationMode.NEGATIVE, headers=headers
    )

    # No example database: it would be written into the working tree (.hypothesis/).
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def requests(case: Case) -> None:
        # A tracking link's 302 points wherever its (fuzzed) token says: not followed.
        response = case.call(allow_redirects=False, timeout=30)
        STATS[(headers["Authorization"][-6:], operation.label, response.status_code)] += 1
        case.validate_response(response, checks=[no_undocumented_server_error])

    try:
        requests()
    except FailureGroup as failure:
        return str(failure)
    return None


@pytest.mark.parametrize("scope", SCOPES)
def test_no_undocumented_server_error(scope: str, gateway: Gateway, keys: dict[str, str]) -> None:
    schema = schemathesis.openapi.from_url(
        f"{gateway.base_url}/openapi.json", config=schemathesis.Config()
    )
    schema.config.update(base_url=gateway.base_url)
    headers = {"Authorization": f"Bearer {keys[scope]}"}
    failures = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        if STREAMS.search(operation.path):
            continue
        failure = fuzz(operation, headers)
        if failure is not None:
            failures[operation.label] = failure
    import json; open("/tmp/pt-fuzz-stats-"+scope+".json","w").write(json.dumps([[*k, v] for k, v in STATS.items() if k[0]==headers["Authorization"][-6:]]))
    assert not failures, "\n\n".join([*failures.values(), gateway_tracebacks(gateway)])


def gateway_tracebacks(gateway: Gateway) -> str:
    """The end of each traceback in the gateway's output: where a 500 came from."""
    lines = gateway.process.output().splitlines()
    found = []
    for start, line in enumerate(lines):
        if line.startswith("Traceback"):
            end = next(
                (i for i in range(start + 1, len(lines)) if not lines[i].startswith(" ")),
                len(lines) - 1,
            )
            found.append("\n".join(lines[max(start + 1, end - 6) : end + 4]))
    return "The gateway's tracebacks, last frames:\n" + "\n\n".join(found) if found else ""
