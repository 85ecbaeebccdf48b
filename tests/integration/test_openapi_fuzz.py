"""schemathesis against the gateway's `/openapi.json`, with all five processes running and a key of
each scope in each of two teams: no request, valid or not, is answered with a 5xx other than the
documented 503 (no model is configured, from the inference route) and 504 (a service did not
answer in time), and every answer's status and body are the ones the document gives for its
route.

Left out: the two Server-Sent Events routes (`GET /api/workflows/{run_id}/events`,
`GET /api/campaigns/{campaign_id}/events`), whose answer for a run or campaign that exists ends
only when it finishes. `stream: true` inference stays in: with no model configured the gateway
answers 503 before any stream starts.

Each operation is fuzzed with schemathesis's Hypothesis strategies (valid and invalid requests)
under `@given`, in one test per scope and team: FUZZ_EXAMPLES requests per operation and key (5
by default: the module takes about half a minute). `schemathesis.pytest.from_fixture`, which would
load the schema from a fixture, sets `Function._nodeid`, which pytest 9.2 no longer has.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis import APIOperation, Case, CheckContext, GenerationMode, Response
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from tests.support.api import MakeKey
from tests.support.stack import Gateway, Launcher, Stack

pytestmark = pytest.mark.integration

SCOPES = ("assistant", "workflows", "review", "admin")
TEAMS = ("red", "blue")
NO_MODEL = {"LLM_MODEL": "", "OPENAI_BASE_URL": "", "OPENAI_API_KEY": ""}
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "5"))  # per operation and key
# Routes that ask the model: 503 without one (the fuzzed stack has none).
MODEL_ROUTES = ("/api/ai-assistant/inference", "/api/ai-assistant/chat")
STREAMS = r"/events$"


@pytest.fixture(scope="module")
def stack() -> Stack:
    """Every service, none with a model (so inference answers its documented 503)."""
    services = ("intent", "inference", "workflow", "campaign")
    return Stack(dict.fromkeys(services, NO_MODEL), gateway_env=NO_MODEL, user="fuzzer")


@pytest.fixture(scope="module", autouse=True)
def hypothesis_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Hypothesis's caches under the test's temporary directory, not `.hypothesis/` here."""
    set_hypothesis_home_dir(tmp_path_factory.mktemp("hypothesis"))
    yield
    set_hypothesis_home_dir(None)


@pytest.fixture(scope="module")
async def keys(make_key: MakeKey) -> dict[tuple[str, str], str]:
    """One key per scope and team, each of a user of its own."""
    return {
        (scope, team): await make_key(scope, user=f"fuzz-{scope}", team=team)
        for scope in SCOPES
        for team in TEAMS
    }


def no_undocumented_server_error(ctx: CheckContext, response: Response, case: Case) -> None:
    """A schemathesis check: a 5xx only as 504, or as 503 from a route that asks the model (there
    is none)."""
    status = response.status_code
    if status < 500 or status == 504 or (status == 503 and case.operation.path in MODEL_ROUTES):
        return
    raise AssertionError(f"{case.operation.label} answered {status}: {response.text[:500]}")


# And every status is documented for its route, with the body the document says.
CHECKS = [no_undocumented_server_error, status_code_conformance, response_schema_conformance]


def fuzz(operation: APIOperation, headers: dict[str, str]) -> str | None:
    """Valid and invalid requests to `operation`: the first failure, shrunk, or None."""
    valid = operation.as_strategy(GenerationMode.POSITIVE, headers=headers)
    invalid = operation.as_strategy(GenerationMode.NEGATIVE, headers=headers)

    @settings(
        max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(case=valid | invalid)
    def send(case: Case) -> None:
        # A tracking link's 302 points wherever its (fuzzed) token says: not followed.
        response = case.call(allow_redirects=False, timeout=30)
        case.validate_response(response, checks=CHECKS)

    try:
        send()
    except FailureGroup as failure:
        return str(failure)
    return None


@pytest.mark.parametrize("team", TEAMS)
@pytest.mark.parametrize("scope", SCOPES)
def test_the_api_answers_as_documented_and_never_with_an_undocumented_5xx(
    scope: str,
    team: str,
    gateway: Gateway,
    keys: dict[tuple[str, str], str],
    module_launcher: Launcher,
) -> None:
    schema = schemathesis.openapi.from_url(
        f"{gateway.base_url}/openapi.json", config=schemathesis.Config()
    )
    schema.config.update(base_url=gateway.base_url)
    headers = {"Authorization": f"Bearer {keys[scope, team]}"}
    failures = []
    for result in schema.exclude(path_regex=STREAMS).get_all_operations():
        failure = fuzz(result.ok(), headers)
        if failure is not None:
            failures.append(failure)
    assert not failures, "\n\n".join([*failures, tracebacks(module_launcher)])


def tracebacks(launcher: Launcher) -> str:
    """The last frames of every traceback the processes printed: where a 5xx came from."""
    found = []
    for proc in launcher.started:
        lines = proc.output().splitlines()
        for start, line in enumerate(lines):
            if line.startswith("Traceback"):
                end = next(
                    (i for i in range(start + 1, len(lines)) if not lines[i].startswith(" ")),
                    len(lines) - 1,
                )
                found.append(
                    f"{proc.name}:\n" + "\n".join(lines[max(start + 1, end - 6) : end + 4])
                )
    return "Tracebacks in the processes' output:\n" + "\n\n".join(found) if found else ""
