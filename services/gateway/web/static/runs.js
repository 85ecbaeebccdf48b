// Workflow runs: GET /api/workflows, filtered by status and type, a page at a time ("More").
import { h, pagedList } from "./app.js";

const $ = (elementId) => document.getElementById(elementId);
const TONE = { succeeded: "ok", waiting: "warn", failed: "bad", cancelled: "bad", expired: "bad" };
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");

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

pagedList({
  path: "/api/workflows",
  filters: [["status", $("run-status")], ["type", $("run-type")]],
  form: $("run-filters"),
  rows: $("run-rows"),
  more: $("runs-more"),
  state: $("runs-state"),
  row,
  nouns: ["run", "runs"],
});
