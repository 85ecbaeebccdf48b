// The review queue of one campaign: its emails 50 at a time (more as you go), the selected draft
// beside its recipient, edit-then-approve, reject, approve/reject all remaining, the progress,
// and keyboard shortcuts (j/k/↓/↑, a, r, e, Esc).
import { api, attempt, h, notify } from "./app.js";

const root = document.getElementById("review-page");
const id = root.dataset.campaignId;
const $ = (elementId) => document.getElementById(elementId);
const subject = $("draft-subject");
const body = $("draft-body");
const TONE = { drafted: "warn", approved: "ok", sent: "ok", rejected: "bad", expired: "bad",
  failed: "bad", bounced: "bad", cancelled: "bad" };
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");
const badge = (status) => h("span", { class: `badge ${TONE[status] ?? ""}` }, status);

let items = []; // the emails loaded so far, best-ranked first
const nodes = new Map(); // email_id → its <li> in the queue
const edits = new Map(); // email_id → {subject, body} typed and not yet approved
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
  return view;
}

async function showDeadline(view) {
  const line = $("deadline");
  if (root.dataset.canSeeRun !== "yes") {
    line.textContent = "Review deadline: only keys with the workflows scope can see it.";
    return;
  }
  try {
    const run = await api("GET", `/api/workflows/${view.run_id}`);
    const wait = run.waiting_for;
    line.textContent = wait && wait.signal === "review_finished" && wait.deadline_at
      ? `Review deadline: ${when(wait.deadline_at)} (undecided drafts then expire).`
      : "No review deadline is running.";
  } catch (error) {
    line.textContent = `Review deadline unknown: ${error.message}`;
  }
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
  for (const name of ["approve", "reject", "edit"]) $(name).disabled = !open;
  const facts = [["Address", email.to_address], ["Rank", email.rank ?? "—"],
    ["Candidate id", email.candidate_id], ["Written", when(email.created_at)]];
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

async function decide(decision) {
  const email = items[selected];
  if (!email || busy) return;
  if (email.status !== "drafted") return announce(`This email is ${email.status}: nothing to decide.`);
  const edit = edits.get(email.email_id);
  let change;
  if (decision === "approve" && edit) {
    change = {};
    if (edit.subject !== email.subject) change.subject = edit.subject;
    if (edit.body !== email.body) change.body = edit.body;
    if (!Object.keys(change).length) change = undefined;
  }
  busy = true;
  const path = `/api/campaigns/${id}/emails/${email.email_id}/${decision}`;
  const updated = await attempt(() => api("POST", path, change));
  busy = false;
  if (!updated) return;
  edits.delete(email.email_id);
  replace(updated);
  announce(`${decision === "approve" ? "Approved" : "Rejected"}: ${updated.to_address}.`);
  refreshCounts();
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
  if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
  const target = event.target;
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

refreshCounts().then((view) => view && showDeadline(view));
load(true);
