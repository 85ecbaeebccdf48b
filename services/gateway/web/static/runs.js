// Workflow runs: GET /api/workflows, filtered by status and type, a page at a time ("More").
import { api, attempt, h } from "./app.js";

const $ = (elementId) => document.getElementById(elementId);
const TONE = { succeeded: "ok", waiting: "warn", failed: "bad", cancelled: "bad", expired: "bad" };
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");
let cursor = null;
let generation = 0;

function row(run) {
  return h("tr", {},
    h("td", {}, h("a", { href: `/app/runs/${run.run_id}` }, h("code", {}, run.run_id.slice(0, 8)),
      h("span", { class: "sr-only" }, ` run ${run.run_id}`))),
    h("td", {}, run.workflow_type),
    h("td", {}, h("span", { class: `badge ${TONE[run.status] ?? ""}` }, run.status)),
    h("td", {}, run.state ?? "—"),
    h("td", {}, run.created_by ?? "—"),
    h("td", {}, run.team ?? "—"),
    h("td", {}, h("time", { datetime: run.created_at }, when(run.created_at))),
    h("td", {}, h("time", { datetime: run.updated_at }, when(run.updated_at))),
    h("td", { class: run.error ? "error" : "" }, run.error ?? ""));
}

async function load(reset) {
  const mine = reset ? ++generation : generation;
  const query = new URLSearchParams({ limit: "50" });
  if ($("run-status").value) query.set("status", $("run-status").value);
  if ($("run-type").value.trim()) query.set("type", $("run-type").value.trim());
  if (!reset && cursor) query.set("cursor", cursor);
  $("runs-more").disabled = true;
  $("runs-state").textContent = "Loading…";
  const page = await attempt(() => api("GET", `/api/workflows?${query}`));
  $("runs-more").disabled = false;
  if (mine !== generation) return;
  if (!page) {
    $("runs-state").textContent = "Could not load the runs.";
    return;
  }
  if (reset) $("run-rows").replaceChildren();
  $("run-rows").append(...page.items.map(row));
  cursor = page.next_cursor;
  $("runs-more").hidden = !cursor;
  const shown = $("run-rows").children.length;
  $("runs-state").textContent = shown ? `${shown} run${shown === 1 ? "" : "s"} shown.` : "No runs.";
}

function remember() {
  const url = new URL(location.href);
  for (const [name, input] of [["status", $("run-status")], ["type", $("run-type")]]) {
    if (input.value.trim()) url.searchParams.set(name, input.value.trim());
    else url.searchParams.delete(name);
  }
  history.replaceState(null, "", url);
}

const params = new URLSearchParams(location.search);
$("run-status").value = params.get("status") ?? "";
$("run-type").value = params.get("type") ?? "";
$("run-filters").addEventListener("submit", (event) => {
  event.preventDefault();
  remember();
  load(true);
});
$("run-status").addEventListener("change", () => $("run-filters").requestSubmit());
$("runs-more").addEventListener("click", () => load(false));
load(true);
