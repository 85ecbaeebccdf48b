// The campaign list: GET /api/campaigns, filtered by status, a page at a time ("More").
import { api, attempt, h } from "./app.js";

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
let cursor = null;
let generation = 0; // a newer load wins over a slower older one

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

async function load(reset) {
  const mine = reset ? ++generation : generation;
  if (reset) cursor = null;
  const query = new URLSearchParams({ limit: "50" });
  if (filter.value) query.set("status", filter.value);
  if (cursor) query.set("cursor", cursor);
  more.disabled = true;
  state.textContent = "Loading…";
  const page = await attempt(() => api("GET", `/api/campaigns?${query}`));
  more.disabled = false;
  if (mine !== generation) return;
  if (!page) {
    state.textContent = "Could not load the campaigns.";
    return;
  }
  if (reset) rows.replaceChildren();
  rows.append(...page.items.map(row));
  cursor = page.next_cursor;
  more.hidden = !cursor;
  const shown = rows.children.length;
  state.textContent = shown ? `${shown} campaign${shown === 1 ? "" : "s"} shown.` : "No campaigns.";
}

filter.value = new URLSearchParams(location.search).get("status") ?? "";
filter.addEventListener("change", () => {
  const url = new URL(location.href);
  if (filter.value) url.searchParams.set("status", filter.value);
  else url.searchParams.delete("status");
  history.replaceState(null, "", url);
  load(true);
});
document.getElementById("filters").addEventListener("submit", (e) => {
  e.preventDefault();
  load(true);
});
more.addEventListener("click", () => load(false));
load(true);
