// The review queue of one campaign: its emails 50 at a time (more as you go), the selected draft
// beside its recipient's profile, edits saved on the server (Save, Ctrl+Enter) or sent with the
// approval, reject, approve/reject all remaining, the progress and the review deadline (from the
// campaign), and keyboard shortcuts (j/k/↓/↑, a, r, e, Esc, Ctrl+Enter).
import { api, attempt, h, notify } from "./app.js";

const root = document.getElementById("review-page");
const id = root.dataset.campaignId;
const $ = (elementId) => document.getElementById(elementId);
const subject = $("draft-subject");
const body = $("draft-body");
const TONE = { drafted: "warn", approved: "ok", sent: "ok", rejected: "bad", expired: "bad",
  failed: "bad", bounced: "bad", cancelled: "bad", waiting: "ok", stopped: "bad" };
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");
const badge = (status) => h("span", { class: `badge ${TONE[status] ?? ""}` }, status);

let items = []; // the emails loaded so far, best-ranked first
const nodes = new Map(); // email_id → its <li> in the queue
const edits = new Map(); // email_id → {subject, body} typed and not yet saved or approved
let selected = -1;
let cursor = null;
let loading = false;
let generation = 0;
let busy = false;
let remaining = 0; // drafts still pending, for the bulk confirmation
let pendingBulk = null;

const announce = (text) => { $("announce").textContent = text; };

// ---- Progress and deadline ----
function progress(counts) {
  const reviewed = counts.approved + counts.rejected;
  const total = reviewed + counts.drafted + counts.expired;
  remaining = counts.drafted;
  $("progress").max = Math.max(total, 1);
  $("progress").value = reviewed;
  const expired = counts.expired ? `, ${counts.expired} expired` : "";
  $("progress-label").textContent = `Reviewed ${reviewed} of ${total} (${counts.approved} approved, ${counts.rejected} rejected, ${counts.drafted} to decide${expired}).`;
  $("approve-all").disabled = $("reject-all").disabled = remaining === 0;
}

async function refreshCounts() {
  const view = await attempt(() => api("GET", `/api/campaigns/${id}`));
  if (!view) return null;
  $("campaign-name").textContent = view.name;
  document.title = `Review ${view.name} · Recruiter assistant`;
  progress(view.counts);
  showDeadline(view);
  return view;
}

// The campaign records its review deadline once its run waits for the review.
function showDeadline(view) {
  const deadline = view.review_deadline_at;
  let text;
  if (view.status === "awaiting_review") {
    text = deadline
      ? `Review deadline: ${when(deadline)} (undecided drafts then expire).`
      : "Review deadline: not known yet.";
  } else {
    text = deadline
      ? `The review is over (its deadline was ${when(deadline)}).`
      : "No review deadline is running.";
  }
  $("deadline").textContent = text;
}

// ---- The queue ----
function queueItem(email) {
  const button = h("button", { type: "button", onclick: () => select(indexOf(email.email_id)) },
    h("span", {}, `${email.rank ? `#${email.rank} ` : ""}${email.to_address} `), badge(email.status),
    email.edited ? " edited" : "", h("br"), h("span", { class: "muted" }, email.subject));
  return h("li", {}, button);
}

const indexOf = (emailId) => items.findIndex((e) => e.email_id === emailId);

function replace(email) {
  const i = indexOf(email.email_id);
  if (i < 0) return;
  items[i] = email;
  const node = queueItem(email);
  nodes.get(email.email_id).replaceWith(node);
  nodes.set(email.email_id, node);
  if (i === selected) select(i, false);
}

async function load(reset) {
  if (!reset && (loading || !cursor)) return;
  const mine = ++generation;
  loading = true;
  const query = new URLSearchParams({ limit: "50" });
  if ($("status-filter").value) query.set("status", $("status-filter").value);
  if (!reset) query.set("cursor", cursor);
  $("load-more").disabled = true;
  const page = await attempt(() => api("GET", `/api/campaigns/${id}/emails?${query}`));
  if (mine !== generation) return;
  loading = false;
  $("load-more").disabled = false;
  if (!page) return;
  if (reset) {
    items = [];
    nodes.clear();
    $("queue").replaceChildren();
    selected = -1;
  }
  for (const email of page.items) {
    items.push(email);
    const node = queueItem(email);
    nodes.set(email.email_id, node);
    $("queue").append(node);
  }
  cursor = page.next_cursor;
  $("load-more").hidden = !cursor;
  $("queue-state").textContent = items.length
    ? `${items.length} loaded${cursor ? "; more as you go" : ""}.`
    : "Nothing in this view.";
  if (reset) select(0, false);
}

// ---- The selected draft ----
function select(i, focus = false) {
  if (!items.length) {
    $("draft").hidden = true;
    $("draft-empty").hidden = false;
    $("profile").replaceChildren();
    return;
  }
  i = Math.max(0, Math.min(i, items.length - 1));
  nodes.get(items[selected]?.email_id)?.firstChild.removeAttribute("aria-current");
  selected = i;
  const email = items[i];
  const button = nodes.get(email.email_id).firstChild;
  button.setAttribute("aria-current", "true");
  button.scrollIntoView({ block: "nearest" });
  if (focus) button.focus({ preventScroll: true });
  show(email);
  if (i >= items.length - 5) load(false); // fetch the next page before it is needed
}

function show(email) {
  $("draft").hidden = false;
  $("draft-empty").hidden = true;
  const edit = edits.get(email.email_id);
  subject.value = edit?.subject ?? email.subject;
  body.value = edit?.body ?? email.body;
  leaveEditor(false);
  $("discard").hidden = !edit;
  $("draft-status").className = `badge ${TONE[email.status] ?? ""}`;
  $("draft-status").textContent = email.status;
  const by = email.reviewed_by ? `by ${email.reviewed_by} on ${when(email.reviewed_at)}` : "";
  $("draft-note").textContent = [email.edited ? "edited" : "", by].filter(Boolean).join(", ");
  const open = email.status === "drafted";
  for (const name of ["approve", "reject", "edit", "save"]) $(name).disabled = !open;
  showFollowUps(email);
  showProfile(email);
}

// ---- The recipient's follow-ups (email.follow_ups), read-only ----
function showFollowUps(email) {
  const steps = email.follow_ups ?? [];
  $("follow-ups").hidden = !steps.length;
  $("follow-up-list").replaceChildren(...steps.map((step) => {
    const wait = `${step.wait_days} working day${step.wait_days === 1 ? "" : "s"} later`;
    const due = step.due_at ? `, due ${when(step.due_at)}` : "";
    const why = step.stopped_because ? ` (${step.stopped_because})` : "";
    return h("li", {}, [
      h("p", { class: "row" }, [badge(step.status), h("span", { class: "muted" }, `${wait}${due}${why}`)]),
      h("p", {}, h("strong", {}, step.subject)),
      h("pre", { class: "follow-up-body" }, step.body),
    ]);
  }));
}

// ---- The recipient's profile (email.candidate) ----
function skillList(candidate) {
  const matched = new Set(candidate.matched_skills);
  if (!candidate.skills.length) return "—";
  return h("span", { class: "row" }, candidate.skills.map((skill) => matched.has(skill)
    ? h("span", { class: "badge ok", title: "asked for by the campaign" }, skill)
    : h("span", { class: "badge" }, skill)));
}

function showProfile(email) {
  const c = email.candidate;
  const facts = [];
  if (c) {
    const place = [c.city, c.country].filter(Boolean).join(", ");
    const experience = c.years_experience == null ? "" : `${c.years_experience} years`;
    facts.push(["Name", c.full_name]);
    if (c.headline) facts.push(["Headline", c.headline]);
    facts.push(["Location", place || "—"],
      ["Seniority", [c.seniority, experience].filter(Boolean).join(", ") || "—"],
      ["Skills", skillList(c)],
      ["Matched", c.matched_skills.length ? c.matched_skills.join(", ") : "—"],
      ["Found via", c.found_via ?? "—"], ["Source", c.source]);
  }
  facts.push(["Address", email.to_address], ["Rank", email.rank ?? "—"],
    ["Written", when(email.created_at)]);
  if (!c) facts.push(["Candidate id", email.candidate_id]);
  $("profile").replaceChildren(...facts.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function edit() {
  const email = items[selected];
  if (!email || email.status !== "drafted") return announce("Only a pending draft can be edited.");
  subject.readOnly = body.readOnly = false;
  $("edit-hint").hidden = false;
  body.focus();
}

function leaveEditor(refocus = true) {
  subject.readOnly = body.readOnly = true;
  $("edit-hint").hidden = true;
  if (refocus && selected >= 0) nodes.get(items[selected].email_id).firstChild.focus();
}

function remember() {
  const email = items[selected];
  if (!email) return;
  edits.set(email.email_id, { subject: subject.value, body: body.value });
  $("discard").hidden = false;
}

// The typed edit's parts that differ from the email as stored, or undefined when none does.
function changeOf(email) {
  const edit = edits.get(email.email_id);
  if (!edit) return undefined;
  const change = {};
  if (edit.subject !== email.subject) change.subject = edit.subject;
  if (edit.body !== email.body) change.body = edit.body;
  return Object.keys(change).length ? change : undefined;
}

// Store the typed edit on the server without deciding: the draft stays pending.
async function save() {
  const email = items[selected];
  if (!email || busy) return;
  if (email.status !== "drafted") return announce("Only a pending draft can be edited.");
  const change = changeOf(email);
  if (!change) return announce("Nothing to save: the draft is as stored.");
  const editing = !subject.readOnly;
  busy = true;
  const path = `/api/campaigns/${id}/emails/${email.email_id}/edit`;
  const updated = await attempt(() => api("POST", path, change));
  busy = false;
  if (!updated) return;
  edits.delete(email.email_id);
  replace(updated); // shows the stored text, footer included
  if (editing && items[selected]?.email_id === updated.email_id) edit(); // keep on editing
  notify(`Saved: ${updated.to_address} (still to decide).`);
  announce(`Saved the edit to ${updated.to_address}.`);
}

async function decide(decision) {
  const email = items[selected];
  if (!email || busy) return;
  if (email.status !== "drafted") return announce(`This email is ${email.status}: nothing to decide.`);
  const change = decision === "approve" ? changeOf(email) : undefined;
  busy = true;
  const path = `/api/campaigns/${id}/emails/${email.email_id}/${decision}`;
  const updated = await attempt(() => api("POST", path, change));
  busy = false;
  if (!updated) return;
  edits.delete(email.email_id);
  replace(updated);
  announce(`${decision === "approve" ? "Approved" : "Rejected"}: ${updated.to_address}.`);
  progress(updated.counts); // the review's counts come with the decision
  if (updated.counts.drafted === 0) refreshCounts(); // the review is over: status and deadline
  if (selected < items.length - 1) select(selected + 1, document.activeElement?.closest("#queue"));
}

async function move(step) {
  if (step > 0 && selected >= items.length - 1) {
    if (!cursor) return announce("That is the last one.");
    await load(false);
  }
  select(selected + step, true);
}

// ---- Everything remaining at once ----
function askBulk(decision) {
  pendingBulk = decision;
  const verb = decision === "approve" ? "Approve" : "Reject";
  $("bulk-title").textContent = `${verb} every remaining draft?`;
  $("bulk-text").textContent = `${verb} all ${remaining} drafts still pending, as they are` +
    (decision === "approve" ? " (edits you have not approved are not sent)?" : "? They are never sent.");
  $("bulk-confirm").textContent = `Yes, ${verb.toLowerCase()} ${remaining}`;
  $("bulk-confirm").className = decision === "reject" ? "danger" : "";
  $("bulk-dialog").showModal();
}

async function bulk(decision) {
  const result = await attempt(() => api("POST", `/api/campaigns/${id}/${decision}-all`));
  if (!result) return;
  notify(`${result.decided} draft${result.decided === 1 ? "" : "s"} ${decision}d.`);
  progress(result.review);
  edits.clear();
  await load(true);
}

// ---- Wiring ----
$("status-filter").addEventListener("change", () => load(true));
$("load-more").addEventListener("click", () => load(false));
$("approve").addEventListener("click", () => decide("approve"));
$("reject").addEventListener("click", () => decide("reject"));
$("edit").addEventListener("click", edit);
$("save").addEventListener("click", save);
$("discard").addEventListener("click", () => {
  edits.delete(items[selected]?.email_id);
  show(items[selected]);
});
$("draft").addEventListener("submit", (e) => e.preventDefault());
subject.addEventListener("input", remember);
body.addEventListener("input", remember);
$("approve-all").addEventListener("click", () => askBulk("approve"));
$("reject-all").addEventListener("click", () => askBulk("reject"));
$("bulk-dialog").addEventListener("close", () => {
  const dialog = $("bulk-dialog");
  if (dialog.returnValue === "confirm") bulk(pendingBulk);
  dialog.returnValue = "";
  $(pendingBulk === "approve" ? "approve-all" : "reject-all").focus();
});

const KEYS = {
  j: () => move(1), ArrowDown: () => move(1), k: () => move(-1), ArrowUp: () => move(-1),
  a: () => decide("approve"), r: () => decide("reject"), e: edit,
};
document.addEventListener("keydown", (event) => {
  const target = event.target;
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && !event.altKey
      && (target === subject || target === body) && !subject.readOnly) {
    event.preventDefault();
    save();
    return;
  }
  if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.key === "Escape") {
    if (target === subject || target === body) {
      event.preventDefault();
      leaveEditor();
    }
    return;
  }
  const typing = target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName);
  if (typing || document.querySelector("dialog[open]")) return;
  const action = KEYS[event.key];
  if (!action) return;
  event.preventDefault();
  action();
});

refreshCounts();
load(true);
