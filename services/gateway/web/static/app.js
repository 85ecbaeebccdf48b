// The web app's shared helpers: calls to the same /api as every client (the session cookie, and
// the page's CSRF token on anything that changes state), readable errors, and event streams that
// reconnect and catch up.

const csrfToken = () => document.querySelector('meta[name="csrf-token"]')?.content ?? "";

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

/** Call the API; the answer's JSON, or an ApiError carrying the API's own message. */
export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = csrfToken();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  if (response.status === 401) {
    window.location.assign(`/app/sign-in?next=${encodeURIComponent(location.pathname)}`);
    throw new ApiError(401, "your session has ended: sign in again");
  }
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, describe(data, response.statusText));
  return data;
}

function describe(data, fallback) {
  if (data && typeof data.detail === "string") return data.detail;
  if (data && Array.isArray(data.errors)) return data.errors.map((e) => e.message ?? e.msg).join("; ");
  return fallback;
}

/** Show a message to the person (an error in red); it goes away after a while. */
export function notify(message, bad = false) {
  const box = document.getElementById("notices");
  const note = document.createElement("div");
  note.className = bad ? "notice bad" : "notice";
  note.setAttribute("role", bad ? "alert" : "status");
  note.textContent = message;
  box.append(note);
  setTimeout(() => note.remove(), bad ? 12000 : 5000);
}

/** Run an action; an error shows the API's message instead of failing silently. */
export async function attempt(action) {
  try {
    return await action();
  } catch (error) {
    notify(error instanceof ApiError ? `${error.message} (HTTP ${error.status})` : String(error), true);
    return undefined;
  }
}

/**
 * Follow a Server-Sent Events stream (GET): `onEvent(name, data)` for each event. The browser's
 * EventSource reconnects by itself with Last-Event-ID; `onGap` runs after each reconnect, so a
 * page can reload what it may have missed.
 */
export function follow(path, names, onEvent, onGap = () => {}) {
  const source = new EventSource(path, { withCredentials: true });
  let opened = false;
  source.onopen = () => {
    if (opened) onGap();
    opened = true;
  };
  for (const name of names) {
    source.addEventListener(name, (event) => onEvent(name, JSON.parse(event.data)));
  }
  return source;
}

/** Read a POSTed Server-Sent Events answer (fetch): `onEvent(name, data)` for each event. */
export async function postStream(path, body, onEvent) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
    body: JSON.stringify(body),
    credentials: "same-origin",
  });
  if (!response.ok) {
    const text = await response.text();
    throw new ApiError(response.status, describe(text ? JSON.parse(text) : null, response.statusText));
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      let data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) name = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (data) onEvent(name, JSON.parse(data));
    }
  }
}

/** An element with attributes and children (text or elements). */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

/**
 * A list read a page at a time from `path` (GET, newest first, `next_cursor` for the next page):
 * `filters` are [query name, input] pairs, filled from the page's URL and kept in it when the
 * `form` is submitted (a select submits on change); `row` makes a table row of an item; "More"
 * (`more`) loads the next page; `state` says how many are shown. A newer load wins over a slower
 * older one.
 */
export function pagedList({ path, filters, form, rows, more, state, row, nouns: [one, many] }) {
  let cursor = null;
  let generation = 0;

  async function load(reset) {
    const mine = reset ? ++generation : generation;
    const query = new URLSearchParams({ limit: "50" });
    for (const [name, input] of filters) {
      if (input.value.trim()) query.set(name, input.value.trim());
    }
    if (!reset && cursor) query.set("cursor", cursor);
    more.disabled = true;
    state.textContent = "Loading…";
    const page = await attempt(() => api("GET", `${path}?${query}`));
    more.disabled = false;
    if (mine !== generation) return;
    if (!page) {
      state.textContent = `Could not load the ${many}.`;
      return;
    }
    if (reset) rows.replaceChildren();
    rows.append(...page.items.map(row));
    cursor = page.next_cursor;
    more.hidden = !cursor;
    const shown = rows.children.length;
    state.textContent = shown ? `${shown} ${shown === 1 ? one : many} shown.` : `No ${many}.`;
  }

  function remember() {
    const url = new URL(location.href);
    for (const [name, input] of filters) {
      if (input.value.trim()) url.searchParams.set(name, input.value.trim());
      else url.searchParams.delete(name);
    }
    history.replaceState(null, "", url);
  }

  const params = new URLSearchParams(location.search);
  for (const [name, input] of filters) {
    input.value = params.get(name) ?? "";
    if (input.tagName === "SELECT") input.addEventListener("change", () => form.requestSubmit());
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    remember();
    load(true);
  });
  more.addEventListener("click", () => load(false));
  load(true);
}
