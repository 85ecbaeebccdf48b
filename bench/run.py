"""`python -m bench`: bring up a stack of its own, drive it with wrk, print and record the numbers.

The benchmarks share one stack (database, Redis; see their modules):

- request-reply (bench.request_reply): `GET /healthz` and `GET /api/services/intent/ping`, with
  1 and 32 clients, then 32 clients against a gateway on 2 uvicorn workers;
  bench/results/request_reply.json.
- intent (bench.intent): `POST /api/ai-assistant/intent` with 1 and 32 clients, the gateway on
  1 worker, against issue 3's targets; bench/results/intent.json.
- workflow (bench.workflow): 1,000 runs of a three-step no-op definition through the workflow
  service, the broker and PostgreSQL, against issue 5's targets; bench/results/workflow.json.
- campaign (bench.campaign): a 1,000-recipient email campaign in template mode, end to end, against
  an SMTP sink in this process, rate limits off; bench/results/campaign.json.
- chat (bench.chat): what `POST /api/ai-assistant/chat` adds to the intent endpoint for a search
  (10,000 demo candidates) and a campaign status question, one client; bench/results/chat.json.
- web (bench.web): the review queue of a 1,000-draft campaign rendered in Chromium, p50/p95 against
  issue 17's 300 ms; bench/results/web.json.
- idle (bench.idle), first: the whole stack with no traffic, its CPU against issue 15's target;
  bench/results/idle.json.
- endurance (bench.endurance): 30,000 intent round trips in a row, one at a time; the p50 of the
  last 3,000 against the first 3,000 (issue 15); bench/results/endurance.json.
- observability (bench.observability), without the stack: what metrics, tracing and the access
  log add to one request in the gateway's stack when nothing is exported;
  bench/results/observability.json.
- search (bench.search), last and without the stack: the campaign's candidate extraction on
  1,000,000 demo candidates in a PostgreSQL of its own (seeded once, kept in .local/), p50/p95 per
  query against issue 16's target; bench/results/search.json.
- inference (bench.inference): `POST /api/ai-assistant/inference` against a fake model server in
  this process: cache hits with 1 and 32 clients, served by the gateway and (for comparison) by
  the inference service through Kafka, and the latency a miss adds to a model call, against issue
  4's targets; bench/results/inference.json. The inference service runs (alone) for this one
  only; it and the gateway get the model settings.

The broker is Apache Kafka where Java 17+ is here (else Tansu; LOCAL_KAFKA chooses). On Tansu,
each wrk run that goes through Kafka, and each of the inference, workflow and campaign
benchmarks, starts on a fresh broker with freshly started services: Tansu slows as its topics
fill, so on one broker a run would also measure the runs before it (docs/benchmarks.md). Each
wrk run gets its own warm-up.
During every measured run the CPU used by each part of the stack is sampled from /proc
(bench.cpu), to show where the time goes.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import (
    campaign,
    chat,
    endurance,
    idle,
    inference,
    intent,
    observability,
    request_reply,
    search,
    web,
    workflow,
    wrk,
)
from bench.cases import Case, Row, cpu_table, measured_run, table
from bench.stack import SERVICES, BenchStack, StackError
from bench.targets import print_verdicts
from deploy.infra import InfraStartError
from shared.errors import DependencyUnavailable

log = logging.getLogger("bench")


def measure(
    stack: BenchStack, scripts: dict[str, Path], todo: list[Case], seconds: int
) -> tuple[list[Row], list[dict[str, Any]]]:
    """The rows, in the order of `todo`; and, when the intent endpoint is among them, its
    messages' replies (checked once, before its first warm-up).

    Every case that goes through Kafka runs on a fresh broker with freshly started services and
    gateway, then gets its own warm-up: Tansu slows as its topics fill, so without this a case
    would measure the cases before it too (docs/benchmarks.md)."""
    rows: list[Row] = []
    checked: list[dict[str, Any]] = []
    url = ""
    workers = 0
    jvm_cold = stack.broker == "apache"
    for case in todo:
        if case.uses_broker or case.workers != workers:
            if case.uses_broker:
                stack.fresh_broker()
                stack.use_services(SERVICES)
            url = stack.start_gateway(case.workers)
            workers = case.workers
            log.info("gateway ready at %s with %d worker(s)", url, workers)
            if case.script == "intent" and not checked:
                checked = intent.check_messages(url, stack.api_key)
            warmup = wrk.WARMUP_SECONDS
            if jvm_cold and case.uses_broker:
                warmup, jvm_cold = wrk.JVM_WARMUP_SECONDS, False
            log.info("warming up %s %s for %d s", case.method, case.endpoint, warmup)
            wrk.warm_up(url + case.endpoint, scripts[case.script], warmup)
            if case.script == "intent":
                intent.wait_for_workflows(stack)
        if case.script == "intent":
            # The campaign runs started so far wait for the campaign service, which is not
            # running: let them end first, or their step timeouts and retries would load the
            # engine during the measured run (and the more, the longer the benchmark has run).
            stack.settle_runs()
            stack.use_services(SERVICES)
        what = (case.method, case.endpoint, case.connections, case.threads, seconds)
        log.info("wrk %s %s: %d connection(s), %d thread(s), %d s", *what)
        result, shares = measured_run(
            stack,
            url + case.endpoint,
            scripts[case.script],
            connections=case.connections,
            threads=case.threads,
            seconds=seconds,
        )
        extra: dict[str, Any] = {}
        if case.script == "intent":
            extra["workflow_catch_up"] = after = intent.wait_for_workflows(stack)
            log.info("workflow service caught up %.1f s after the run", after["catch_up_seconds"])
        rows.append(
            Row(
                case.method,
                case.endpoint,
                case.workers,
                case.connections,
                case.threads,
                result,
                cpu_percent=shares,
                extra=extra,
            )
        )
    return rows, checked


def report(rows: list[Row], checked: list[dict[str, Any]], seconds: int, version: str) -> None:
    rr_rows = [r for r in rows if r.endpoint != intent.INTENT]
    intent_rows = [r for r in rows if r.endpoint == intent.INTENT]
    written = []
    if rr_rows:
        written.append(request_reply.write_results(rr_rows, seconds, version))
    if intent_rows:
        written.append(intent.write_results(intent_rows, checked, seconds, version))

    if not rows:
        return
    print()
    print(table(rows))
    overhead = request_reply.kafka_overhead_ms(rows)
    if overhead is not None:
        print(f"\nthe Kafka round trip adds {overhead:.2f} ms at p50 (1 client, 1 worker)")
    print("\nCPU during each run, % of one core (top's %CPU; 200 = both cores busy):")
    print(cpu_table(rows))
    for row in intent_rows:
        after = row.extra["workflow_catch_up"]
        replies = row.result.workflow_replies
        print(
            f"\nPOST {intent.INTENT}, {row.connections} client(s): {row.result.requests} requests, "
            f"{row.result.non_2xx} non-2xx, {replies} answered with a workflow_id; the workflow "
            f"service {'caught up' if after['caught_up'] else 'had NOT caught up'} "
            f"{after['catch_up_seconds']:.1f} s after the run (so far: {after['logged']} "
            f"intents logged, {after['lag']} not yet consumed, {after['runs']} runs started of "
            f"{after['startable']} startable)"
        )
    if checked:
        as_expected = sum(c["reply"]["mode"] == c["expected_mode"] for c in checked)
        starting = sum(c["reply"]["starts_workflow"] for c in checked)
        print(
            f"\nthe {len(checked)} messages each answered 200 before the warm-up; {as_expected} "
            f"detected in the expected mode, {starting} starting a workflow"
        )
    verdicts = intent.verdicts(rows)
    if verdicts:
        print("\nissue 3 targets (POST /api/ai-assistant/intent, gateway on 1 worker):")
        print_verdicts(verdicts)
    for path in written:
        print(f"results written to {path}")
    errors = sum(r.result.errors for r in rows)
    if errors:
        print(f"bench: {errors} request(s) failed; see the errors column", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--seconds", type=int, default=10, help="length of each measured run")
    parser.add_argument(
        "--only",
        choices=(
            "request-reply", "intent", "inference", "workflow", "campaign", "chat", "web",
            "idle", "endurance", "search", "observability",
        ),
        help="run one benchmark (default: all)",
    )  # fmt: skip
    parser.add_argument(
        "--round-trips",
        type=int,
        default=endurance.ROUND_TRIPS,
        help="endurance: how many intent round trips in a row",
    )
    parser.add_argument(
        "--two-workers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="request-reply: also measure 32 clients against a gateway with 2 uvicorn workers",
    )
    parser.add_argument(
        "--search-candidates",
        type=int,
        default=search.CANDIDATES,
        help="search: how many demo candidates in the pool",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpx2"):  # one line per readiness poll, per model call (openai)
        logging.getLogger(noisy).setLevel(logging.WARNING)
    todo: list[Case] = []
    if args.only in (None, "request-reply"):
        todo += request_reply.cases(args.two_workers)
    if args.only in (None, "intent"):
        todo += intent.cases()
    with_inference = args.only in (None, "inference")
    with_workflow = args.only in (None, "workflow")
    with_campaign = args.only in (None, "campaign")
    with_chat = args.only in (None, "chat")
    with_web = args.only in (None, "web")
    with_idle = args.only in (None, "idle")
    with_endurance = args.only in (None, "endurance")
    idle_cost: dict[str, Any] | None = None
    endured: dict[str, Any] | None = None
    outreach: dict[str, Any] | None = None
    chatted: dict[str, Any] | None = None
    paged: dict[str, Any] | None = None
    engine: dict[str, Any] | None = None
    services: tuple[str, ...] = SERVICES if todo else ()  # inference.measure starts its own
    rows: list[Row] = []
    checked: list[dict[str, Any]] = []
    measured: inference.Measured | None = None
    if args.only == "observability":  # in this process: no broker, services or wrk
        return run_observability("-")
    if args.only == "search":  # needs no broker, services, gateway or wrk
        wrk_version = wrk.version() if shutil.which("wrk") else "-"
        return run_search(args.search_candidates, wrk_version)
    try:
        wrk_version = wrk.version()
        with (
            tempfile.TemporaryDirectory(prefix="bench-") as tmp,
            BenchStack(Path(tmp), services) as stack,
        ):
            # First: the stack as `make run` leaves it, before any benchmark's backlog.
            if with_idle:
                idle_cost = idle.measure(stack)
            if todo:
                scripts = {
                    "get": wrk.write_script(Path(tmp), stack.api_key),
                    "intent": wrk.write_post_script(
                        Path(tmp), stack.api_key, intent.messages(), "intent"
                    ),
                }
                rows, checked = measure(stack, scripts, todo, args.seconds)
                if any(case.script == "intent" for case in todo):
                    # Its campaign runs wait for the campaign service, which was not running: let
                    # them end, so that their retries do not load the benchmarks after this one.
                    stack.settle_runs()
            if with_inference:
                measured = inference.measure(stack, Path(tmp), args.seconds)
            if with_workflow:
                engine = workflow.measure(stack)
            if with_campaign:
                outreach = campaign.measure(stack)
            if with_chat:
                chatted = chat.measure(stack)
            if with_web:
                paged = web.measure(stack)
            if with_endurance:
                endured = endurance.measure(stack, args.round_trips)
    except (
        wrk.WrkError,
        StackError,
        intent.IntentCheckError,
        inference.InferenceCheckError,
        InfraStartError,
        DependencyUnavailable,
        workflow.BenchmarkError,
        campaign.BenchmarkError,
        chat.BenchmarkError,
        web.BenchmarkError,
        endurance.BenchmarkError,
    ) as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 1
    report(rows, checked, args.seconds, wrk_version)
    if engine is not None:
        workflow.report(engine)
        print("\nissues 5 and 15 targets (1,000 three-step runs, then 100 one at a time):")
        print_verdicts(workflow.verdicts(engine))
        print(f"results written to {workflow.write_results(engine, wrk_version)}")
    if outreach is not None:
        campaign.report(outreach)
        print(f"results written to {campaign.write_results(outreach, wrk_version)}")
    if chatted is not None:
        chat.report(chatted)
        print(f"results written to {chat.write_results(chatted, wrk_version)}")
    if paged is not None:
        web.report(paged)
        print(f"results written to {web.write_results(paged, wrk_version)}")
    if idle_cost is not None:
        idle.report(idle_cost)
        print(f"results written to {idle.write_results(idle_cost, wrk_version)}")
    if endured is not None:
        endurance.report(endured)
        print(f"results written to {endurance.write_results(endured, wrk_version)}")
    if measured is not None:
        inference.report(measured)
        path = inference.write_results(measured, args.seconds, wrk_version)
        print(f"results written to {path}")
        errors = sum(r.result.errors for r in measured.rows)
        if errors or not all(r.extra["all_hits"] for r in measured.rows):
            print("bench: not every inference request was a 2xx cache hit", file=sys.stderr)
    if args.only is None:  # after the stack is down: its processes would share the 2 cores
        run_observability(wrk_version)
        return run_search(args.search_candidates, wrk_version)
    return 0


def run_observability(wrk_version: str) -> int:
    found = observability.measure()
    observability.report(found)
    print(f"results written to {observability.write_results(found, wrk_version)}")
    return 0


def run_search(candidates: int, wrk_version: str) -> int:
    try:
        found = search.measure(candidates)
    except (search.BenchmarkError, InfraStartError, OSError) as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 1
    search.report(found)
    print(f"results written to {search.write_results(found, wrk_version)}")
    missed = [q["query"] for q in found["queries"] if q["p95_ms"] >= search.TARGET_P95_MS]
    if missed:
        print(f"bench: p95 at or over {search.TARGET_P95_MS:.0f} ms: {missed}", file=sys.stderr)
    return 0
