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

// Why the next email is not going now (docs/email.md, "Pacing").
const WAITS = {
  window: "the recipient's working hours",
  daily_cap: "the sender's daily cap",
  spacing: "the spacing between two emails",
  rate: "the overall sending rate",
  retry: "a retry after a temporary failure",
};

function nextSend(next) {
  if (!next || !next.waiting_for || !WAITS[next.waiting_for]) return "";
  return ` The next email goes ${next.at ? `at ${when(next.at)}` : "later"}: it waits for ${WAITS[next.waiting_for]}.`;
}

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
      return `Sending: ${c.sent} sent, ${c.queued} still to go.${nextSend(view.next_send)}`;
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
  $("campaign-meta").textContent = `Job: ${view.job.title}. Created by ${view.created_by ?? "—"} on ${when(view.created_at)}${ended}. Team: ${view.team ?? "—"}.`;
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

// ---- The funnel over time: GET /api/campaigns/{id}/timeline, as lines and as a table ----
const LINES = [["sent", "#0b5cad"], ["delivered", "#116329"], ["opened", "#8250df"],
  ["clicked", "#bf3989"], ["replied", "#7d4e00"], ["bounced", "#a40e26"]];
const SVG = "http://www.w3.org/2000/svg";
let timelineDue = null;

function svg(tag, attributes, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  element.append(...children);
  return element;
}

function chart(timeline) {
  const points = timeline.points;
  const width = 760, height = 220, left = 40, bottom = 24;
  const top = Math.max(1, ...points.flatMap((p) => LINES.map(([kind]) => p[kind])));
  const x = (i) => left + (points.length < 2 ? 0 : (i * (width - left - 10)) / (points.length - 1));
  const y = (n) => height - bottom - (n * (height - bottom - 10)) / top;
  const label = (iso) => {
    const at = new Date(iso);
    return timeline.bucket === "day" ? at.toLocaleDateString() : at.toLocaleString([], { hour: "2-digit", minute: "2-digit", day: "numeric", month: "short" });
  };
  const lines = LINES.map(([kind, colour]) => svg("polyline", {
    points: points.map((p, i) => `${x(i)},${y(p[kind])}`).join(" "),
    fill: "none", stroke: colour, "stroke-width": 2,
  }));
  // Dots too, so that a line of one point (the first hour) shows.
  const dots = points.length > 48 ? [] : LINES.flatMap(([kind, colour]) =>
    points.map((p, i) => svg("circle", { cx: x(i), cy: y(p[kind]), r: 3.5, fill: colour })));
  const axis = [
    svg("line", { x1: left, y1: height - bottom, x2: width, y2: height - bottom, stroke: "#8c959f" }),
    svg("text", { x: 0, y: y(top) + 4, "font-size": 11 }, String(top)),
    svg("text", { x: 0, y: height - bottom, "font-size": 11 }, "0"),
    svg("text", { x: left, y: height - 6, "font-size": 11 }, label(points[0].at)),
    svg("text", { x: width, y: height - 6, "font-size": 11, "text-anchor": "end" }, label(points.at(-1).at)),
  ];
  const last = points.at(-1);
  const summary = LINES.map(([kind]) => `${last[kind]} ${kind}`).join(", ");
  return [
    svg("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img",
      "aria-label": `Emails by ${timeline.bucket} since the first was sent; now ${summary}` },
    ...axis, ...lines, ...dots),
    h("p", { class: "row" }, LINES.map(([kind, colour]) =>
      h("span", {}, h("span", { "aria-hidden": "true", style: `color:${colour}` }, "■ "), kind))),
  ];
}

async function loadTimeline() {
  const timeline = await attempt(() => api("GET", `/api/campaigns/${id}/timeline`));
  if (!timeline) return;
  const points = timeline.points;
  $("timeline-state").textContent = points.length ? `By ${timeline.bucket}: ${points.length} ${timeline.bucket}${points.length === 1 ? "" : "s"} since the first email left.` : "Nothing has been sent yet.";
  $("timeline-chart").replaceChildren(...(points.length ? chart(timeline) : []));
  $("timeline-head").replaceChildren(h("tr", {}, h("th", { scope: "col" }, timeline.bucket),
    LINES.map(([kind]) => h("th", { scope: "col" }, kind))));
  $("timeline-rows").replaceChildren(...points.map((p) => h("tr", {},
    h("td", {}, new Date(p.at).toLocaleString()), LINES.map(([kind]) => h("td", {}, p[kind])))));
}

/** Reload the timeline at most every few seconds while counts stream in. */
function timelineSoon() {
  if (timelineDue) return;
  timelineDue = setTimeout(() => {
    timelineDue = null;
    loadTimeline();
  }, 3000);
}

function live() {
  source = follow(`/api/campaigns/${id}/events`, ["counts", "end"], (name, data) => {
    if (name === "counts") {
      render(data);
      timelineSoon();
    }
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
loadTimeline();
