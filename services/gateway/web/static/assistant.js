// The assistant page: a conversation with POST /api/ai-assistant/chat (streamed), its history,
// and for a campaign request the run's progress, live, with its questions answered in the chat.
import { ApiError, api, attempt, follow, h, postStream } from "./app.js";

const chat = document.getElementById("chat");
const form = document.getElementById("composer");
const input = document.getElementById("message");
const send = document.getElementById("send");
const picker = document.getElementById("conversations");
const canFollowRuns = chat.dataset.workflows === "yes";
const canReview = chat.dataset.review === "yes";
let conversationId = new URLSearchParams(location.search).get("c");

const SLOT_NAMES = {
  skills: "Skills", location: "City", country: "Country", seniority: "Seniority",
  min_years_experience: "Years (min)", job_title: "Job", limit: "How many",
  remote: "Remote", exclude_skills: "Not",
};

function intentCard(intent) {
  const rows = [["Intent", `${intent.intent} (${intent.mode}, ${Math.round(intent.confidence * 100)}%)`]];
  for (const [name, value] of Object.entries(intent.slots ?? {})) {
    if (value === null || value === undefined || (Array.isArray(value) && value.length === 0)) continue;
    rows.push([SLOT_NAMES[name] ?? name, Array.isArray(value) ? value.join(", ") : String(value)]);
  }
  return h("div", { class: "intent-card", "aria-label": "Detected intent" },
    h("dl", {}, rows.map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)])));
}

function searchTable(search) {
  if (!search.matches.length) return null;
  return h("table", {},
    h("caption", { class: "sr-only" }, "Matching candidates, best first"),
    h("thead", {}, h("tr", {}, ["Name", "City", "Years", "Skills", "Why", "Note"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, search.matches.map((m) => h("tr", {},
      h("td", {}, m.full_name), h("td", {}, m.city ?? ""), h("td", {}, m.years_experience ?? ""),
      h("td", {}, m.skills.join(", ")), h("td", {}, m.why),
      h("td", {}, m.suppressed ? h("span", { class: "badge bad" }, `suppressed: ${m.suppressed}`)
        : m.contacted_at ? h("span", { class: "badge warn" }, `contacted about ${m.contacted_about ?? "a job"}`)
        : "")))));
}

function runProgress(run) {
  const box = h("div", { class: "intent-card run-progress", "aria-live": "polite" },
    h("strong", {}, "Campaign run: "), h("span", { class: "run-state" }, "starting"),
    " · ", h("a", { href: `/app/runs/${run.run_id}` }, "details"));
  if (!canFollowRuns) {
    box.querySelector(".run-state").textContent = "started (following it needs the workflows scope)";
    return box;
  }
  const state = box.querySelector(".run-state");
  let drafting = null;
  const show = async (detail) => {
    const name = detail.state;
    if (detail.status === "failed") state.textContent = `failed: ${detail.error ?? "see details"}`;
    else if (detail.status === "cancelled") state.textContent = "cancelled";
    else if (detail.status === "completed") state.textContent = "finished";
    else if (detail.question || detail.change === "needs_input") state.textContent = "waiting for your answer";
    else if (name === "extract_candidates") state.textContent = "finding the candidates";
    else if (name === "generate_drafts") state.textContent = "drafting the emails";
    else if (name === "await_review") state.textContent = "waiting for review";
    else if (name) state.textContent = name.replaceAll("_", " ");
    const question = detail.question ?? detail.detail?.question;
    if (question && !box.dataset.asked) {
      box.dataset.asked = "yes";
      const choices = (question.choices ?? []).map((c, i) => `${i + 1}. ${c.label}`).join("\n");
      addBubble("assistant", `${question.text}${choices ? `\n${choices}` : ""}\n(Answer here.)`);
    }
    if (name === "await_review" && canReview && !box.querySelector(".review-link")) {
      box.append(" · ", h("a", { class: "review-link", href: `/app/campaigns/${run.run_id}/review` }, "review the drafts"));
    }
    if (name === "generate_drafts" && !drafting) {
      drafting = setInterval(() => attempt(async () => {
        const campaign = await api("GET", `/api/campaigns/${run.run_id}`);
        state.textContent = `drafting ${campaign.drafting.generated}/${campaign.drafting.total}`;
      }), 1000);
    } else if (name !== "generate_drafts" && drafting) {
      clearInterval(drafting);
      drafting = null;
    }
  };
  // The run starts a moment after the answer (from the intent's event): until then it is a 404,
  // and an event stream that answers 404 is not retried by the browser.
  started(run.run_id).then((ok) => {
    if (!ok) {
      state.textContent = "not started yet: see the runs page";
      return;
    }
    follow(`/api/workflows/${run.run_id}/events`, ["snapshot", "change"], (_, detail) => show(detail),
      () => attempt(async () => show(await api("GET", `/api/workflows/${run.run_id}`))));
  });
  return box;
}

/** Wait (up to 30 s) until the run exists; whether it does. */
async function started(runId) {
  for (let waited = 0; waited < 30000; waited += 250) {
    try {
      await api("GET", `/api/workflows/${runId}`);
      return true;
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 404) throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return false;
}

function addBubble(role, text) {
  const bubble = h("div", { class: `bubble ${role}` }, text);
  chat.append(h("div", { class: "turn" }, bubble));
  bubble.scrollIntoView({ block: "end" });
  return bubble;
}

function renderAnswer(bubble, answer) {
  bubble.textContent = answer.text;
  const extras = [];
  if (answer.kind === "search") extras.push(searchTable(answer.search));
  if (answer.kind === "campaign_status" && answer.campaign_status?.campaign) {
    const id = answer.campaign_status.campaign.campaign_id;
    extras.push(h("a", { href: `/app/campaigns/${id}` }, "Open the campaign"));
  }
  if ((answer.kind === "run_started" || answer.kind === "run_input") && answer.run) {
    if (answer.kind === "run_started") extras.push(runProgress(answer.run));
  }
  bubble.after(...extras.filter(Boolean));
}

async function say(message) {
  addBubble("user", message);
  const turn = chat.lastElementChild;
  const reply = h("div", { class: "bubble assistant" }, "…");
  turn.append(reply);
  const body = { message, stream: true };
  if (conversationId) body.conversation_id = conversationId;
  try {
    let streamed = "";
    await postStream("/api/ai-assistant/chat", body, (name, data) => {
      if (name === "intent") {
        reply.before(intentCard(data));
      } else if (name === "delta") {
        streamed += data.text;
        reply.textContent = streamed;
      } else if (name === "done") {
        if (!conversationId) {
          conversationId = data.conversation_id;
          history.replaceState(null, "", `?c=${conversationId}`);
          loadConversations();
        }
        renderAnswer(reply, data);
      } else if (name === "error") {
        reply.textContent = `${data.detail} (HTTP ${data.status})`;
        reply.classList.add("error");
      }
    });
  } catch (error) {
    reply.textContent = error instanceof ApiError ? `${error.message} (HTTP ${error.status})` : String(error);
    reply.classList.add("error");
  }
}

async function showConversation(id) {
  const conversation = await api("GET", `/api/ai-assistant/conversations/${encodeURIComponent(id)}`);
  chat.replaceChildren();
  for (const turn of conversation.messages) {
    addBubble("user", turn.message);
    const reply = h("div", { class: "bubble assistant" });
    chat.lastElementChild.append(intentCard(turn.answer.intent), reply);
    renderAnswer(reply, turn.answer);
  }
}

async function loadConversations() {
  const mine = await api("GET", "/api/ai-assistant/conversations?limit=30");
  picker.replaceChildren(h("option", { value: "" }, "New conversation"),
    ...mine.map((c) => h("option", { value: c.conversation_id, selected: c.conversation_id === conversationId }, c.title)));
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const message = input.value.trim();
  if (!message) return;
  input.value = "";
  send.disabled = true;
  try {
    await say(message);
  } finally {
    send.disabled = false;
    input.focus();
  }
});
input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    form.requestSubmit();
  }
});
picker.addEventListener("change", () => {
  conversationId = picker.value || null;
  history.replaceState(null, "", conversationId ? `?c=${conversationId}` : location.pathname);
  if (conversationId) attempt(() => showConversation(conversationId));
  else chat.replaceChildren();
});

attempt(loadConversations);
if (conversationId) attempt(() => showConversation(conversationId));
