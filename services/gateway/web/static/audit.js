// The audit log (admins only): GET /api/audit, newest first, filtered by action, who, team and
// object id (kept in the URL), a page at a time ("More"); an edit shows its text before and after.
import { h, pagedList } from "./app.js";

const $ = (elementId) => document.getElementById(elementId);
const FILTERS = [["action", "audit-action"], ["actor", "audit-actor"], ["team", "audit-team"],
  ["object_id", "audit-object"]];
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");

function tone(action) {
  if (/(rejected|cancelled|stopped|revoked|erased)/.test(action)) return "bad";
  if (/(paused|edited)/.test(action)) return "warn";
  if (/(approved|resumed|created)/.test(action)) return "ok";
  return "";
}

/** A short id that links to `href`, with the whole id for screen readers. */
function idLink(kind, id, href) {
  const label = [`${kind} `, h("code", {}, id.slice(0, 8)), h("span", { class: "sr-only" }, ` ${id}`)];
  return href ? h("a", { href }, label) : h("span", {}, label);
}

function object(entry) {
  const id = entry.object_id;
  const parts = [];
  switch (entry.object_type) {
    case "campaign":
      parts.push(idLink("Campaign", id, `/app/campaigns/${encodeURIComponent(id)}`));
      break;
    case "run":
      parts.push(idLink("Run", id, `/app/runs/${encodeURIComponent(id)}`));
      break;
    case "sending":
      parts.push("All sending");
      break;
    default: // an email, a key or a candidate: no page of its own
      parts.push(idLink(entry.object_type[0].toUpperCase() + entry.object_type.slice(1), id));
  }
  // What it belongs to: an email's campaign (or a run's, when that is not the object itself).
  if (entry.campaign_id && entry.object_type !== "campaign" && entry.object_type !== "run") {
    parts.push(h("br"), "in ", idLink("campaign", entry.campaign_id, `/app/campaigns/${entry.campaign_id}`));
  } else if (entry.run_id && entry.object_type !== "run" && entry.object_type !== "campaign") {
    parts.push(h("br"), "in ", idLink("run", entry.run_id, `/app/runs/${entry.run_id}`));
  }
  return parts;
}

const text = (value) =>
  value === null || value === undefined ? "—" : typeof value === "object" ? JSON.stringify(value) : String(value);

/** An edit's before and after, side by side, one row per field (subject, then body); a field
 * the edit left as it was takes one cell, folded. */
function edit(before, after) {
  const order = (field) => ["subject", "body"].indexOf(field) >>> 0; // any other field last
  const fields = [...new Set([...Object.keys(before), ...Object.keys(after)])]
    .sort((a, b) => order(a) - order(b));
  return h("table", { class: "diff" },
    h("caption", { class: "sr-only" }, "The text before and after the edit"),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Field"),
      h("th", { scope: "col" }, "Before"), h("th", { scope: "col" }, "After"))),
    h("tbody", {}, fields.map((field) => {
      const [was, is] = [text(before[field]), text(after[field])];
      if (was === is) {
        return h("tr", {}, h("th", { scope: "row" }, field),
          h("td", { class: "same", colspan: 2 },
            h("details", {}, h("summary", {}, "Unchanged"), h("div", { class: "text" }, is))));
      }
      return h("tr", { class: "changed" },
        h("th", { scope: "row" }, field, h("span", { class: "badge warn" }, "changed")),
        h("td", { class: "before" }, was),
        h("td", { class: "after" }, is));
    })));
}

function detail(entry) {
  const { before, after, ...rest } = entry.detail ?? {};
  const shown = [];
  const isEdit = before && after && typeof before === "object" && typeof after === "object";
  if (isEdit) shown.push(edit(before, after));
  const others = Object.entries(isEdit ? rest : entry.detail ?? {});
  if (others.length) {
    shown.push(h("dl", { class: "facts" },
      others.flatMap(([name, value]) => [h("dt", {}, name.replaceAll("_", " ")), h("dd", {}, text(value))])));
  }
  if (entry.trace_id) shown.push(h("p", { class: "muted trace" }, "Trace ", h("code", {}, entry.trace_id)));
  return shown.length ? shown : "—";
}

function row(entry) {
  return h("tr", {},
    h("td", {}, h("time", { datetime: entry.at }, when(entry.at))),
    h("td", {}, entry.actor ?? "—"),
    h("td", {}, entry.team ?? "—"),
    h("td", {}, h("span", { class: `badge ${tone(entry.action)}` }, entry.action)),
    h("td", {}, object(entry)),
    h("td", { class: "audit-detail" }, detail(entry)));
}

pagedList({
  path: "/api/audit",
  filters: FILTERS.map(([name, elementId]) => [name, $(elementId)]),
  form: $("audit-filters"),
  rows: $("audit-rows"),
  more: $("audit-more"),
  state: $("audit-state"),
  row,
  nouns: ["entry", "entries"],
});
