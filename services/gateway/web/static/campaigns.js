// The campaign list: GET /api/campaigns, filtered by status, a page at a time ("More").
import { h, pagedList } from "./app.js";

const STATUS_TONE = {
  awaiting_review: "warn", sending: "ok", monitoring: "ok", completed: "ok",
  failed: "bad", cancelled: "bad", expired: "bad",
};
const root = document.getElementById("campaigns");
const canReview = root.dataset.canReview === "yes";
const rows = document.getElementById("campaign-rows");
const filter = document.getElementById("status-filter");
const more = document.getElementById("more");
const state = document.getElementById("list-state");

const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");
const badge = (status) =>
  h("span", { class: `badge ${STATUS_TONE[status] ?? ""}` }, status.replace("_", " "));

function row(c) {
  const page = `/app/campaigns/${c.campaign_id}`;
  return h("tr", {},
    h("td", {}, h("a", { href: page }, c.name)),
    h("td", {}, c.job.title),
    h("td", {}, badge(c.status)),
    h("td", {}, c.paused ? h("span", { class: "badge warn" }, "paused") : "no"),
    h("td", {}, c.created_by ?? "—"),
    h("td", {}, c.team ?? "—"),
    h("td", {}, h("time", { datetime: c.created_at }, when(c.created_at))),
    h("td", {}, canReview ? h("a", { href: `${page}/review`, "aria-label": `Review ${c.name}` }, "Review") : "—"),
  );
}

pagedList({
  path: "/api/campaigns",
  filters: [["status", filter]],
  form: document.getElementById("filters"),
  rows,
  more,
  state,
  row,
  nouns: ["campaign", "campaigns"],
});
