// One campaign: its status, what it waits for, the funnel of its counts (live, over SSE), its
// recipients page by page, and the recruiter's pause / resume / close / cancel.
import { api, attempt, follow, h, notify } from "./app.js";

const root = document.getElementById("campaign");
const id = root.dataset.campaignId;
const $ = (elementId) => document.getElementById(elementId);
const STAGES = ["drafted", "approved", "sent", "delivered", "opened", "clicked", "replied",
  "unsubscribed", "bounced"];
const MAY_SEND = ["extracting", "generating", "awaiting_review", "sending"];
const FINISHED = ["completed", "failed", "cancelled", "expired"];
const TONE = {
  awaiting_review: "warn", sending: "ok", monitoring: "ok", completed: "ok", approved: "ok",
  sent: "ok", drafted: "warn", failed: "bad", cancelled: "bad", expired: "bad", rejected: "bad",
  bounced: "bad",
};
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");
let source = null;

/** What the campaign waits for, in a sentence (as the campaign service's `waiting_for`). */
function waitingFor(view) {
  const c = view.counts;
  if (view.paused && MAY_SEND.includes(view.status)) {
    return `Sending is paused (by ${view.paused_by || "someone"}); resume it to go on.`;
  }
  switch (view.status) {
    case "extracting":
    case "generating":
      return `Drafting its emails: ${view.drafting.generated} of ${view.drafting.total} written.`;
    case "awaiting_review":
      return `Waiting for review: ${c.drafted} drafts to decide, ${c.queued} to send.`;
    case "sending":
      return `Sending: ${c.sent} sent, ${c.queued} still to go.`;
    case "monitoring":
      return `Watching for replies: ${c.sent} sent, ${c.opened} opened, ${c.replied} replied, ${c.bounced} bounced.`;
    default:
      return `Nothing: it is ${view.status.replace("_", " ")}.`;
  }
}

function funnel(counts) {
  // "Drafted" is every email written (counts.total); counts.drafted is only those still pending.
  const value = (stage) => (stage === "drafted" ? counts.total : counts[stage]);
  const top = Math.max(counts.total, ...STAGES.map(value), 1);
  return STAGES.map((stage) => {
    const n = value(stage);
    const fill = h("div", { class: "fill" });
    fill.style.width = `${(100 * n) / top}%`;
    return h("div", { class: "bar" },
      h("span", {}, stage[0].toUpperCase() + stage.slice(1)),
      h("div", { class: "track", role: "img", "aria-label": `${stage}: ${n} of ${counts.total}` }, fill),
      h("span", { class: "count" }, String(n)));
  });
}

function render(view) {
  document.title = `${view.name} · Recruiter assistant`;
  $("campaign-name").textContent = view.name;
  const status = $("campaign-status");
  status.className = `badge ${TONE[view.status] ?? ""}`;
  status.textContent = view.status.replace("_", " ");
  $("campaign-paused").hidden = !view.paused;
  $("waiting-for").textContent = waitingFor(view);
  const ended = view.ended_by ? `; ended by ${view.ended_by}` : "";
  $("campaign-meta").textContent = `Job: ${view.job.title}. Created by ${view.created_by ?? "—"} on ${when(view.created_at)}${ended}.`;
  $("funnel").replaceChildren(...funnel(view.counts));
  const c = view.counts;
  $("funnel-extra").textContent = `Pending review ${c.drafted} · rejected ${c.rejected} · expired ${c.expired} · queued ${c.queued} · failed ${c.failed} · cancelled ${c.cancelled} · complained ${c.complained}.`;
  if ($("pause")) {
    const finished = FINISHED.includes(view.status);
    $("pause").disabled = view.paused || !MAY_SEND.includes(view.status);
    $("resume").disabled = !view.paused || finished;
    $("cancel").disabled = !MAY_SEND.includes(view.status);
    $("close").disabled = view.status !== "monitoring";
  }
}

const reload = () => attempt(async () => {
  const view = await api("GET", `/api/campaigns/${id}`);
  render(view);
  return view;
});

async function steer(action) {
  const result = await attempt(() => api("POST", `/api/campaigns/${id}/${action}`));
  if (!result) return;
  render(result.campaign);
  const flight = result.in_flight ? ` (${result.in_flight} already with the mail server)` : "";
  notify(result.changed ? `Campaign: ${action} done${flight}.` : `Nothing to ${action}: it already was.`);
}

function live() {
  source = follow(`/api/campaigns/${id}/events`, ["counts", "end"], (name, data) => {
    if (name === "counts") render(data);
    if (name === "end") {
      source.close(); // the stream is over: do not reconnect
      $("live-state").textContent = "";
      reload();
    }
  }, () => {
    reload();
    loadRecipients(true);
  });
  $("live-state").textContent = "(live)";
}

// ---- Recipients: the review route's email list, filtered by status, 50 at a time ----
let cursor = null;
let generation = 0;

async function loadRecipients(reset) {
  const rows = $("recipient-rows");
  if (!rows) return;
  const mine = reset ? ++generation : generation;
  if (reset) cursor = null;
  const query = new URLSearchParams({ limit: "50" });
  const status = $("recipient-status").value;
  if (status) query.set("status", status);
  if (cursor) query.set("cursor", cursor);
  const page = await attempt(() => api("GET", `/api/campaigns/${id}/emails?${query}`));
  if (!page || mine !== generation) return;
  if (reset) rows.replaceChildren();
  rows.append(...page.items.map((e) => h("tr", {},
    h("td", {}, e.rank ?? "—"),
    h("td", {}, e.to_address),
    h("td", {}, e.subject),
    h("td", {}, h("span", { class: `badge ${TONE[e.status] ?? ""}` }, e.status), e.edited ? " (edited)" : ""),
    h("td", {}, e.reviewed_by ?? "—"))));
  cursor = page.next_cursor;
  $("recipients-more").hidden = !cursor;
  $("recipients-state").textContent = `${rows.children.length} shown${cursor ? "; more below" : ""}.`;
}

// ---- Controls ----
if ($("pause")) {
  $("pause").addEventListener("click", () => steer("pause"));
  $("resume").addEventListener("click", () => steer("resume"));
  $("close").addEventListener("click", () => steer("close"));
  const dialog = $("cancel-dialog");
  $("cancel").addEventListener("click", () => dialog.showModal());
  dialog.addEventListener("close", () => {
    if (dialog.returnValue === "confirm") steer("cancel");
    dialog.returnValue = "";
    $("cancel").focus();
  });
}
if ($("recipient-rows")) {
  $("recipient-status").addEventListener("change", () => loadRecipients(true));
  $("recipient-filters").addEventListener("submit", (e) => e.preventDefault());
  $("recipients-refresh").addEventListener("click", () => loadRecipients(true));
  $("recipients-more").addEventListener("click", () => loadRecipients(false));
}

reload().then((view) => view && !FINISHED.includes(view.status) && live());
loadRecipients(true);
