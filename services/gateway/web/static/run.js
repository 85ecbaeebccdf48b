// One workflow run: its summary, the timeline of its step attempts, the question it waits on
// (with a form to answer it), cancel and retry, and live updates over SSE.
import { api, attempt, follow, h, notify } from "./app.js";

const id = document.getElementById("run-page").dataset.runId;
const $ = (elementId) => document.getElementById(elementId);
const FINISHED = ["succeeded", "failed", "cancelled", "expired"];
const TONE = { succeeded: "ok", waiting: "warn", failed: "bad", cancelled: "bad", expired: "bad",
  timed_out: "bad", abandoned: "bad" };
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");
const badge = (status) => h("span", { class: `badge ${TONE[status] ?? ""}` }, status.replace("_", " "));
let source = null;
let questionShown = null; // the asked_at of the question in the form, to keep what is typed

function duration(ms) {
  if (ms === null || ms === undefined) return "—";
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function render(run) {
  const status = $("run-status");
  status.className = `badge ${TONE[run.status] ?? ""}`;
  status.textContent = run.status;
  const wait = run.waiting_for
    ? `${run.waiting_for.signal}${run.waiting_for.deadline_at ? ` until ${when(run.waiting_for.deadline_at)}` : ""}`
    : "—";
  const facts = [["Type", `${run.workflow_type} (v${run.definition_version})`],
    ["State", run.state ?? "—"], ["Waiting for", wait], ["Next check", when(run.next_timer_at)],
    ["Created", `${when(run.created_at)} by ${run.created_by ?? "—"}`], ["Team", run.team ?? "—"],
    ["Updated", when(run.updated_at)], ["Finished", when(run.finished_at)]];
  $("run-facts").replaceChildren(...facts.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  $("run-error").hidden = !run.error;
  $("run-error").textContent = run.error ? `Error: ${run.error}` : "";
  $("run-campaign").hidden = run.workflow_type !== "email_campaign";
  $("retry").disabled = run.status !== "failed";
  $("cancel-run").disabled = FINISHED.includes(run.status);
  $("steps").replaceChildren(...run.steps.map((s) => h("tr", {},
    h("td", {}, s.step_id),
    h("td", {}, s.visit > 1 ? `${s.state} (visit ${s.visit})` : s.state),
    h("td", {}, h("code", {}, s.action)),
    h("td", {}, s.attempt),
    h("td", {}, badge(s.status)),
    h("td", {}, h("time", { datetime: s.requested_at }, when(s.requested_at))),
    h("td", {}, duration(s.duration_ms)),
    h("td", { class: s.error ? "error" : "" }, s.error ?? ""))));
  $("run-params").textContent = JSON.stringify(run.params, null, 2);
  showQuestion(run.question);
}

function showQuestion(question) {
  $("question").hidden = !question;
  if (!question) {
    questionShown = null;
    return;
  }
  if (questionShown === question.asked_at) return; // the same question: keep the answer typed
  questionShown = question.asked_at;
  $("question-text").textContent = question.text;
  $("answer-text").value = "";
  $("answer-label").textContent = question.choices.length ? "Or your own answer" : "Your answer";
  $("choices").replaceChildren(...question.choices.map((choice, i) => h("div", { class: "choice" },
    h("input", { type: "radio", name: "choice", id: `choice-${i}`, value: choice.value }),
    h("label", { for: `choice-${i}` }, choice.label))));
}

const reload = () => attempt(async () => {
  const run = await api("GET", `/api/workflows/${id}`);
  render(run);
  return run;
});

let pending = null; // coalesce a burst of change events into one reload
function reloadSoon() {
  pending ??= setTimeout(async () => {
    pending = null;
    await reload();
  }, 250);
}

async function act(path, body, done) {
  const run = await attempt(() => api("POST", `/api/workflows/${id}/${path}`, body));
  if (!run) return;
  render(run);
  notify(done);
  if (!source && !FINISHED.includes(run.status)) live(); // a retried run goes on: follow it again
}

function live() {
  $("run-live").textContent = "(live)";
  source = follow(`/api/workflows/${id}/events`, ["snapshot", "change"], (name, data) => {
    if (name === "snapshot") render(data);
    else reloadSoon();
    if (FINISHED.includes(data.status)) { // the stream ends here: do not reconnect
      source.close();
      source = null;
      $("run-live").textContent = "";
      if (name === "change") reloadSoon();
    }
  }, reload);
}

$("answer-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const typed = $("answer-text").value.trim();
  const picked = document.querySelector('input[name="choice"]:checked')?.value;
  const answer = typed || picked;
  if (!answer) {
    notify("Pick a choice or type an answer.", true);
    return;
  }
  questionShown = null;
  act("input", { answer }, "Answer sent: the step runs again.");
});
$("retry").addEventListener("click", () => act("retry", undefined, "Retrying the failed step."));
const dialog = $("cancel-run-dialog");
$("cancel-run").addEventListener("click", () => dialog.showModal());
dialog.addEventListener("close", () => {
  if (dialog.returnValue === "confirm") act("cancel", undefined, "Run cancelled.");
  dialog.returnValue = "";
  $("cancel-run").focus();
});

reload().then((run) => run && !FINISHED.includes(run.status) && live());
