// postdate's web page: lists messages from /api/status, shows one with its
// attempts and payload, cancels, retries failed and expired ones, schedules
// from a form, and shows the queues with their pending and failed messages.
// It talks only to /api/status, /api/schedule, /api/cancel, /api/retry,
// /api/queues and /api/health.
//
// Everything the API returns (URLs, ids, keys, queue names, payloads,
// errors) is untrusted: it is put on the page with textContent or
// attributes only, never as HTML.
"use strict";

const TOKEN_KEY = "postdate.token";
const STATES = ["pending", "delivering", "delivered", "failed", "cancelled", "expired"];
// The states POST /api/retry brings back to pending.
const RETRYABLE = ["failed", "expired"];
// What the Queues view lists of a chosen queue: what waits, and the dead letters.
const QUEUE_STATES = ["pending", "failed"];
const QUEUE_LIMIT = 100;
const QUEUE_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const REFRESH_MS = 5000;
const DEFAULT_LIMIT = 50;
// A working dispatcher picks a due message up within a second or two; this
// much lateness means none is running.
const OVERDUE_ALARM_S = 10;
const TARGETS_SHOWN = 3;

const $ = (id) => document.getElementById(id);

// ---- small DOM helpers (text only) ----

// el("td", {class: "x", text: "y", attrs: {title: "z"}}, child, ...)
function el(tag, options = {}, ...children) {
  const node = document.createElement(tag);
  if (options.class) node.className = options.class;
  if (options.text !== undefined) node.textContent = options.text;
  for (const [name, value] of Object.entries(options.attrs || {})) {
    node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child) node.append(child);
  }
  return node;
}

function showText(node, text) {
  node.textContent = text || "";
  node.hidden = !text;
}

function stateBadge(state) {
  const known = STATES.includes(state) ? state : "unknown";
  return el("span", { class: "state state-" + known, text: state });
}

function nothing() {
  return el("span", { class: "muted", text: "—" });
}

// ---- time ----

// "42 s", "4 min", "2 h 5 min", "3 d 4 h"
function formatSpan(seconds) {
  const s = Math.round(Math.abs(seconds));
  if (s < 60) return s + " s";
  const min = Math.round(s / 60);
  if (min < 60) return min + " min";
  const h = Math.floor(min / 60), m = min % 60;
  if (h < 48) return m ? `${h} h ${m} min` : `${h} h`;
  const d = Math.floor(h / 24), rh = h % 24;
  return rh ? `${d} d ${rh} h` : `${d} d`;
}

// "in 4 min", or for the past "3 s late" (still pending) or "3 s ago".
function formatRelative(iso, pastWord) {
  const seconds = (Date.parse(iso) - Date.now()) / 1000;
  if (Math.abs(seconds) < 1) return "now";
  return seconds > 0 ? "in " + formatSpan(seconds) : formatSpan(seconds) + " " + pastWord;
}

// "23 Nov, 14:02:40" in the reader's zone and locale; the year only when it
// is not this one.
function formatLocal(iso) {
  const d = new Date(iso);
  if (isNaN(d)) return String(iso);
  const options = { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", second: "2-digit" };
  if (d.getFullYear() !== new Date().getFullYear()) options.year = "numeric";
  return d.toLocaleString(undefined, options);
}

// A <time> whose relative part is kept current by updateRelativeTimes().
function timeBlock(iso, pastWord) {
  if (!iso) return nothing();
  const rel = el("span", { class: "relative" });
  rel.dataset.at = iso;
  rel.dataset.past = pastWord;
  rel.textContent = formatRelative(iso, pastWord);
  return el("time", { class: "when", attrs: { datetime: iso, title: iso } },
    el("span", { class: "local", text: formatLocal(iso) }), rel);
}

function updateRelativeTimes() {
  for (const rel of document.querySelectorAll(".relative[data-at]")) {
    rel.textContent = formatRelative(rel.dataset.at, rel.dataset.past);
  }
}

// A datetime-local value ("2026-11-23T09:30[:15]") as the API's local form
// ("2026-11-23 09:30[:15]"). The page never turns it into an instant itself:
// the API converts it in the zone sent with it, with its own rules for the
// times that clocks skip or repeat, and the page shows what the API says.
function localInputToAPI(value) {
  return value.replace("T", " ");
}

// The browser's own zone, which the form offers until the user picks another.
function browserZone() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "";
}

// ---- the token ----

function storedToken() {
  try {
    return localStorage.getItem(TOKEN_KEY) || "";
  } catch {
    return "";
  }
}

function storeToken(token) {
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
  $("forget-token").hidden = !token;
}

// A link with #token=... hands the page its token once; the address bar
// then loses it so it is not bookmarked, shared or kept in history. Anyone
// can send such a link, so a token already stored is replaced only when
// the user says so.
function takeTokenFromHash() {
  const hash = new URLSearchParams(location.hash.slice(1));
  const token = hash.get("token");
  if (token === null) return;
  const given = token.trim(), stored = storedToken();
  if (!stored || given === stored ||
      confirm("This link carries a different API token. Replace the token this browser " +
              "has stored with the one from the link?")) {
    storeToken(given);
  }
  history.replaceState(history.state, "", location.pathname + location.search);
}

let waitingForToken = false;

function askForToken(reason) {
  $("token-reason").textContent = reason;
  const panel = $("token-panel");
  if (panel.hidden) {
    panel.hidden = false;
    $("token-input").value = "";
    $("token-input").focus();
  }
  waitingForToken = true;
}

function tokenGiven(token) {
  storeToken(token);
  $("token-panel").hidden = true;
  waitingForToken = false;
  refresh();
}

function forgetToken() {
  storeToken("");
  forgetShownMessages();
  askForToken("The token is forgotten. Enter one to see and schedule messages.");
}

// What the API showed with the token is not left on the screen without it.
function forgetShownMessages() {
  list.shown = "";
  detail.shown = "";
  $("tabs").replaceChildren();
  $("messages").querySelector("tbody").replaceChildren();
  $("detail-fields").replaceChildren();
  $("history").querySelector("tbody").replaceChildren();
  queues.shown = "";
  queues.messagesShown = "";
  $("queues").querySelector("tbody").replaceChildren();
  $("queue-messages").querySelector("tbody").replaceChildren();
  $("queue-tabs").replaceChildren();
  $("updated").textContent = "";
}

// ---- the API ----

class ApiError extends Error {
  constructor(status, message, field, body) {
    super(message);
    this.status = status;    // 0 when the API could not be reached
    this.field = field || null;
    this.body = body || null;
  }
}

// The JSON an API route answers; an ApiError for anything but 2xx. A 401
// also asks for a token.
async function api(path, { method = "GET", form = null, auth = true } = {}) {
  const headers = { Accept: "application/json" };
  const token = storedToken();
  if (auth && token) headers.Authorization = "Bearer " + token;
  let response;
  try {
    response = await fetch(path, { method, headers, body: form, cache: "no-store" });
  } catch {
    throw new ApiError(0, "The API is unreachable. Is postdate running?");
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    // Not JSON: a proxy's error page, say. The status says enough.
  }
  if (response.ok && body) return body;
  if (response.status === 401) {
    askForToken(token ? "The API did not accept the token you gave. Enter another one."
                      : "The API needs a token.");
  }
  const message = (body && typeof body.error === "string" && body.error) ||
    `The API answered ${response.status} ${response.statusText}`.trim() + ".";
  throw new ApiError(response.status, message, body && body.field, body);
}

// ---- where we are: ?state=&limit= for the list, ?id= for one message,
// ?view=queues[&queue=NAME[&state=failed]] for the queues ----

function currentView() {
  const query = new URLSearchParams(location.search);
  const id = query.get("id");
  if (id) return { name: "detail", id };
  if (query.get("view") === "queues") {
    const state = query.get("state");
    return {
      name: "queues",
      queue: query.get("queue") || null,
      state: QUEUE_STATES.includes(state) ? state : "pending",
    };
  }
  const state = query.get("state");
  const limit = parseInt(query.get("limit"), 10);
  return {
    name: "list",
    state: STATES.includes(state) || state === "all" ? state : "pending",
    limit: limit >= 1 && limit <= 1000 ? limit : DEFAULT_LIMIT,
  };
}

function listHref(state, limit) {
  const query = new URLSearchParams();
  if (state !== "pending") query.set("state", state);
  if (limit !== DEFAULT_LIMIT) query.set("limit", String(limit));
  const q = query.toString();
  return q ? "?" + q : location.pathname;
}

function detailHref(id) {
  return "?" + new URLSearchParams({ id }).toString();
}

function queueHref(name, state = "pending") {
  const query = new URLSearchParams({ view: "queues" });
  if (name) query.set("queue", name);
  if (name && state !== "pending") query.set("state", state);
  return "?" + query.toString();
}

// A queue's name as a link to its messages in the Queues view.
function queueLink(name) {
  const link = el("a", { class: "queue-name", text: name, attrs: { href: queueHref(name) } });
  link.dataset.nav = "";
  return link;
}

// Links marked data-nav change the view without loading the page again.
function navigate(href) {
  history.pushState(null, "", href);
  showView(true);
}

function onNavClick(event) {
  const link = event.target.closest("a[data-nav]");
  if (!link || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey ||
      event.altKey) return;
  event.preventDefault();
  navigate(link.getAttribute("href"));
}

// ---- the list ----

const list = {
  key: "",          // state and limit the paging below belongs to
  cursors: [null],  // cursors[i] fetches page i; the API's cursors only go forward
  page: 0,
  nextCursor: null,
  shown: "",        // the JSON last rendered, to skip re-rendering the same rows
  loadSeq: 0,
};

function resetPagingIfChanged(view) {
  const key = view.state + "/" + view.limit;
  if (list.key === key) return;
  list.key = key;
  list.cursors = [null];
  list.page = 0;
  list.nextCursor = null;
  list.shown = "";
}

async function loadList(view) {
  resetPagingIfChanged(view);
  const seq = ++list.loadSeq;
  const query = new URLSearchParams({ state: view.state, limit: String(view.limit) });
  const cursor = list.cursors[list.page];
  if (cursor) query.set("cursor", cursor);
  let body;
  try {
    body = await api("/api/status?" + query.toString());
  } catch (e) {
    if (seq === list.loadSeq) showListFailure(e);
    return false;
  }
  // A slower answer for a view the user has left must not overwrite it.
  if (seq !== list.loadSeq) return false;
  showText($("list-error"), "");
  renderTabs(view, body.counts || {});
  list.nextCursor = body.next_cursor || null;
  renderPager(view, body.messages.length);
  const json = JSON.stringify(body.messages);
  if (json !== list.shown) {
    list.shown = json;
    renderRows(body.messages);
    renderEmpty(view, body.messages.length);
  }
  return true;
}

// Without a valid token there is nothing to show; the token panel says why.
function showListFailure(e) {
  if (e.status !== 401) {
    showText($("list-error"), e.message);
    return;
  }
  showText($("list-error"), "");
  list.shown = "";
  $("messages").querySelector("tbody").replaceChildren();
  $("messages").hidden = true;
  $("prev-page").parentElement.hidden = true;
  showText($("empty"), "Enter the API token above to see the messages.");
}

function renderTabs(view, counts) {
  const all = STATES.reduce((sum, s) => sum + (counts[s] || 0), 0);
  const tabs = [...STATES, "all"].map((state) => {
    const count = state === "all" ? all : counts[state] || 0;
    const link = el("a", { class: "tab", attrs: { href: listHref(state, view.limit) } },
      el("span", { text: state[0].toUpperCase() + state.slice(1) }),
      el("span", { class: "count", text: String(count) }));
    link.dataset.nav = "";
    link.dataset.state = state;
    if (state === view.state) link.setAttribute("aria-current", "page");
    return link;
  });
  keepFocus($("tabs"), () => $("tabs").replaceChildren(...tabs));
}

function renderPager(view, shownCount) {
  $("prev-page").disabled = list.page === 0;
  $("next-page").disabled = !list.nextCursor;
  const first = list.page * view.limit + 1;
  $("page-info").textContent = shownCount
    ? `${first}–${first + shownCount - 1}` : list.page ? "past the end" : "";
  $("prev-page").parentElement.hidden = list.page === 0 && !list.nextCursor;
}

function renderEmpty(view, shownCount) {
  let text = "";
  if (!shownCount) {
    if (list.page > 0) text = "Nothing more on this page: go back to the previous one.";
    else if (view.state === "all") text = "There are no messages yet. Schedule one with the form.";
    else text = `No ${view.state} messages.`;
  }
  showText($("empty"), text);
  $("messages").hidden = !shownCount;
}

function renderRows(messages) {
  const tbody = $("messages").querySelector("tbody");
  keepFocus(tbody, () => tbody.replaceChildren(...messages.map(messageRow)));
}

function messageRow(m) {
  const open = el("a", { class: "id", text: m.id, attrs: { href: detailHref(m.id), title: m.id } });
  open.dataset.nav = "";
  open.dataset.focusKey = "open:" + m.id;
  return el("tr", {},
    labelled("Id", open),
    labelled("Due", dueBlock(m)),
    labelled("Destination", destinationBlock(m)),
    labelled("Attempts", el("span", { class: "num", text: `${m.attempts} / ${m.max_attempts}` })),
    labelled("State", stateBadge(m.state)),
    labelled("", actionButton(m)));
}

// A cell that says what it holds when the table is shown as cards (narrow screens).
function labelled(label, content) {
  const td = el("td", {}, content);
  if (label) td.dataset.label = label;
  else td.className = "row-actions";
  return td;
}

// Pending messages that have had a round show when the next one is.
function dueBlock(m) {
  const block = timeBlock(m.due, m.state === "pending" ? "late" : "ago");
  if (m.state === "pending" && m.attempts > 0 && m.next_attempt) {
    const next = el("span", { class: "relative" });
    next.dataset.at = m.next_attempt;
    next.dataset.past = "late";
    next.textContent = formatRelative(m.next_attempt, "late");
    block.append(el("span", { class: "next", text: "next round " }, next));
  }
  if (m.expires && (m.state === "pending" || m.state === "delivering")) {
    const ends = el("span", { class: "relative" });
    ends.dataset.at = m.expires;
    ends.dataset.past = "ago";
    ends.textContent = formatRelative(m.expires, "ago");
    block.append(el("span", { class: "next expires", text: "expires " }, ends));
  }
  return block;
}

// A URL pool, or the queue that workers pull the message from; a priority
// other than the default is said beside it.
function destinationBlock(m) {
  const box = m.queue
    ? el("div", { class: "targets" }, el("span", {},
      el("span", { class: "muted", text: "queue " }), queueLink(m.queue)))
    : targetsBlock(m.urls || []);
  if (m.priority) box.append(el("span", { class: "muted priority", text: "priority " + m.priority }));
  return box;
}

function targetsBlock(urls) {
  const box = el("div", { class: "targets" });
  for (const url of urls.slice(0, TARGETS_SHOWN)) box.append(el("span", { class: "url", text: url }));
  if (urls.length > TARGETS_SHOWN) {
    box.append(el("span", { class: "muted", text: `and ${urls.length - TARGETS_SHOWN} more` }));
  }
  if (!urls.length) box.append(nothing());
  return box;
}

// What a message in a list can have done to it: a pending one cancelled, a
// failed or expired one retried.
function actionButton(m) {
  if (m.state === "pending") return cancelButton(m.id);
  if (RETRYABLE.includes(m.state)) return retryButton(m.id);
  return null;
}

// A retry sends the message again, which the user asked for by clicking;
// nothing is lost by it (a retried message can be cancelled), so no dialog.
function retryButton(id) {
  const button = el("button", {
    class: "small", text: "Retry",
    attrs: { type: "button", "aria-label": "Retry message " + id },
  });
  button.dataset.focusKey = "retry:" + id;
  button.addEventListener("click", () => retryMessage(id));
  return button;
}

function cancelButton(id) {
  const button = el("button", {
    class: "danger small", text: "Cancel",
    attrs: { type: "button", "aria-label": "Cancel message " + id },
  });
  button.dataset.focusKey = "cancel:" + id;
  button.addEventListener("click", () => confirmAndCancel(id));
  return button;
}

// Re-rendering must not throw away the keyboard user's place.
function keepFocus(container, render) {
  const active = document.activeElement;
  const key = active && container.contains(active) ? focusKeyOf(active) : null;
  render();
  if (!key) return;
  for (const node of container.querySelectorAll("[data-focus-key]")) {
    if (node.dataset.focusKey === key) {
      node.focus();
      return;
    }
  }
}

function focusKeyOf(node) {
  if (node.dataset.focusKey) return node.dataset.focusKey;
  if (node.dataset.state !== undefined) node.dataset.focusKey = "tab:" + node.dataset.state;
  return node.dataset.focusKey || null;
}

function nextPage() {
  if (!list.nextCursor) return;
  list.cursors[list.page + 1] = list.nextCursor;
  list.page += 1;
  list.shown = "";
  refresh();
}

function previousPage() {
  if (list.page === 0) return;
  list.page -= 1;
  list.shown = "";
  refresh();
}

// ---- one message ----

const detail = { id: null, shown: "", loadSeq: 0 };

// The fields of GET /api/status?id=, in reading order; any others the API
// adds later are shown after them as they come. A label may depend on the
// message (a queue's attempts are receives); an optional field is left out
// when the API gives it as null or not at all (a queue message has no
// targets, a pushed one no queue).
const DETAIL_FIELDS = [
  ["state", "State", (v) => stateBadge(v)],
  ["due", "Due", (v, m) => timeBlock(v, m.state === "pending" ? "late" : "ago")],
  ["created", "Created", (v) => timeBlock(v, "ago")],
  ["next_attempt", (m) => m.queue ? "Receivable" : "Next round", (v, m) =>
    timeBlock(v, m.queue ? "ago" : "late")],
  ["urls", "Targets", (v) => targetsList(v), { optional: true }],
  ["queue", "Queue", (v) => queueLink(v), { optional: true }],
  ["priority", "Priority", (v) => el("span", { class: "num", text: String(v) + (v ? "" : " (the default)") })],
  ["expires", "Expires", (v, m) => timeBlock(v, m.state === "pending" ? "late" : "ago")],
  ["callback", "Callback", (v) => el("span", { class: "url", text: v })],
  ["attempts", (m) => m.queue ? "Receives" : "Rounds", (v, m) =>
    el("span", { text: `${v} of at most ${m.max_attempts}` })],
  ["max_attempts", null],
  ["delivered_to", "Delivered to", (v) => el("span", { class: "url", text: v })],
  ["delivered_at", "Delivered at", (v) => timeBlock(v, "ago")],
  ["method", "Method", (v) => el("code", { text: v }), { optional: true }],
  ["headers", "Headers", (v) => headerNames(v), { optional: true }],
  ["recurring", "Recurring", (v) => el("code", { text: v }), { optional: true }],
  ["payload_bytes", "Payload size", (v) => el("span", { text: `${v} byte${v === 1 ? "" : "s"}` })],
  ["payload", "Payload", (v) => payloadBlock(v, false), { optional: true, keepEmpty: true }],
  ["payload_base64", "Payload (base64)", (v) => payloadBlock(v, true), { optional: true }],
  ["content_type", "Content type", (v) => el("code", { text: v })],
  ["timeout", "Timeout per attempt", (v) => el("span", { text: v + " s" }), { optional: true }],
  ["idempotency_key", "Idempotency key", (v) => el("code", { text: v })],
  ["id", null],
  ["history", null],
];

// The payload as the API gives it: text, or base64 for bytes that are not
// UTF-8 (said so, and shown as the base64 text, never decoded into markup).
function payloadBlock(value, isBase64) {
  if (value === "") return el("span", { class: "muted", text: "empty" });
  const box = el("div", { class: "payload-box" }, el("pre", { class: "payload", text: value }));
  if (isBase64) box.append(el("p", { class: "hint", text: "Not UTF-8 text: shown as base64." }));
  return box;
}

function headerNames(names) {
  if (!Array.isArray(names) || names.length === 0) return el("span", { class: "muted", text: "none" });
  return el("span", { class: "url", text: names.join(", ") });
}

function targetsList(urls) {
  const ul = el("ul", { class: "plain" });
  for (const url of urls || []) ul.append(el("li", { class: "url", text: url }));
  return ul;
}

function fieldValue(render, value, m) {
  if (value === null || value === undefined || value === "") return nothing();
  return render ? render(value, m) : el("span", { text: typeof value === "string" ? value : JSON.stringify(value) });
}

async function loadDetail(view) {
  if (detail.id !== view.id) {
    detail.id = view.id;
    detail.shown = "";
    $("detail-id").textContent = view.id;
    $("detail-fields").replaceChildren();
    $("history").querySelector("tbody").replaceChildren();
    $("history").hidden = true;
    $("history-empty").hidden = true;
    $("detail-actions").hidden = true;
  }
  const seq = ++detail.loadSeq;
  let m;
  try {
    m = await api("/api/status?" + new URLSearchParams({ id: view.id }).toString());
  } catch (e) {
    if (seq === detail.loadSeq) {
      showText($("detail-error"), e.status === 404 ? "There is no message with this id."
        : e.status === 401 ? "Enter the API token above to see this message." : e.message);
    }
    return false;
  }
  if (seq !== detail.loadSeq || detail.id !== m.id) return false;
  showText($("detail-error"), "");
  const json = JSON.stringify(m);
  if (json !== detail.shown) {
    detail.shown = json;
    renderDetail(m);
  }
  return true;
}

function renderDetail(m) {
  const items = [];
  const known = new Set(DETAIL_FIELDS.map(([key]) => key));
  for (const [key, label, render, options = {}] of DETAIL_FIELDS) {
    if (!label) continue;
    const value = m[key];
    if (options.optional && (value === null || value === undefined)) continue;
    const text = typeof label === "function" ? label(m) : label;
    items.push([text, options.keepEmpty && value === "" ? render(value, m)
      : fieldValue(render, value, m)]);
  }
  for (const key of Object.keys(m)) {
    if (!known.has(key)) items.push([key, fieldValue(null, m[key], m)]);
  }
  $("detail-fields").replaceChildren(...items.map(([label, value]) =>
    el("div", { class: "field-row" }, el("dt", { text: label }), el("dd", {}, value))));
  $("detail-cancel").hidden = m.state !== "pending";
  $("detail-retry").hidden = !RETRYABLE.includes(m.state);
  $("detail-actions").hidden = $("detail-cancel").hidden && $("detail-retry").hidden;
  const history = m.history || [];
  $("history").querySelector("tbody").replaceChildren(...history.map(historyRow));
  $("history").hidden = history.length === 0;
  $("history-empty").hidden = history.length !== 0;
}

function historyRow(h) {
  return el("tr", {},
    labelled("Time", h.at ? el("time", { text: formatLocal(h.at), attrs: { datetime: h.at, title: h.at } }) : nothing()),
    labelled("URL", el("span", { class: "url", text: h.url || "" })),
    labelled("Status", h.status === null || h.status === undefined
      ? nothing() : el("span", { class: h.status >= 200 && h.status < 300 ? "ok num" : "bad num", text: String(h.status) })),
    labelled("Error", h.error ? el("span", { class: "bad", text: h.error }) : nothing()),
    labelled("ms", el("span", { class: "num", text: h.ms === null || h.ms === undefined ? "" : String(h.ms) })));
}

// ---- cancelling ----

function askToConfirmCancel(id) {
  const dialog = $("cancel-dialog");
  $("cancel-id").textContent = id;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "cancel"), { once: true });
  });
}

async function confirmAndCancel(id) {
  if (!(await askToConfirmCancel(id))) return;
  const name = currentView().name;
  const errorBox = name === "detail" ? $("detail-error")
    : name === "queues" ? $("queue-error") : $("list-error");
  try {
    await api("/api/cancel", { method: "POST", form: new URLSearchParams({ id }) });
    showText(errorBox, "");
  } catch (e) {
    const state = e.body && e.body.state;
    showText(errorBox, e.status === 409 && state
      ? `Message ${id} is ${state} and can no longer be cancelled.` : e.message);
  }
  list.shown = "";
  detail.shown = "";
  queues.messagesShown = "";
  refresh();
}

// ---- retrying ----

async function retryMessage(id) {
  const name = currentView().name;
  const errorBox = name === "detail" ? $("detail-error")
    : name === "queues" ? $("queue-error") : $("list-error");
  try {
    await api("/api/retry", { method: "POST", form: new URLSearchParams({ id }) });
    showText(errorBox, "");
  } catch (e) {
    const state = e.body && e.body.state;
    showText(errorBox, e.status === 409 && state
      ? `Message ${id} is ${state}: only a failed or expired message can be retried.` : e.message);
  }
  list.shown = "";
  detail.shown = "";
  queues.messagesShown = "";
  refresh();
}

// ---- scheduling ----

const FORM_FIELDS = ["url", "queue", "delay", "at", "tz", "payload", "content_type", "callback",
  "max_attempts", "timeout", "priority", "ttl", "method", "header", "idempotency_key"];

// The form as the API's fields; empty optional fields are left out so the
// API's defaults apply. URLs and a queue are both sent when both are
// filled in: the API's 400 then says which to keep, at the queue field.
function scheduleFields() {
  const form = $("schedule-form");
  const fields = new URLSearchParams();
  for (const url of $("f-url").value.split(/\r?\n/)) {
    if (url.trim()) fields.append("url", url.trim());
  }
  const queue = $("f-queue").value.trim();
  if (queue) fields.set("queue", queue);
  const when = form.elements.when.value;
  if (when === "delay") fields.set("delay", $("f-delay").value.trim());
  if (when === "at") {
    fields.set("at", localInputToAPI($("f-at").value));
    const zone = $("f-tz").value.trim();
    if (zone) fields.set("tz", zone);
  }
  fields.set("payload", $("f-payload").value);
  for (const name of ["content_type", "callback", "max_attempts", "timeout", "priority", "ttl",
    "idempotency_key"]) {
    const value = $("f-" + name).value.trim();
    if (value) fields.set(name, value);
  }
  // POST is the default, and a queue takes no method at all.
  if ($("f-method").value !== "POST") fields.set("method", $("f-method").value);
  // One "Name: value" a line; the API checks each and names header if one is wrong.
  for (const line of $("f-header").value.split(/\r?\n/)) {
    if (line.trim()) fields.append("header", line.trim());
  }
  return fields;
}

function clearFieldErrors() {
  for (const name of FORM_FIELDS) {
    showText($(`f-${name}-error`), "");
    $("f-" + name).removeAttribute("aria-invalid");
  }
  showText($("schedule-error"), "");
}

// The API names the field it did not like; say so next to that field.
function showScheduleError(e) {
  const box = e.field && FORM_FIELDS.includes(e.field) ? $(`f-${e.field}-error`) : null;
  if (!box) {
    showText($("schedule-error"), e.message);
    return;
  }
  const input = $("f-" + e.field);
  if (input.closest("details")) input.closest("details").open = true;
  showText(box, e.message);
  input.setAttribute("aria-invalid", "true");
  input.focus();
}

async function submitSchedule(event) {
  event.preventDefault();
  clearFieldErrors();
  $("schedule-result").replaceChildren();
  const button = event.submitter || $("schedule-form").querySelector("[type=submit]");
  button.disabled = true;
  try {
    const made = await api("/api/schedule", { method: "POST", form: scheduleFields() });
    scheduled(made);
  } catch (e) {
    if (e.status === 401) {
      showText($("schedule-error"), "The API needs a token: enter it above, then schedule again.");
    } else {
      showScheduleError(e);
    }
  } finally {
    button.disabled = false;
  }
}

function scheduled(made) {
  const link = el("a", { class: "id", text: made.id, attrs: { href: detailHref(made.id) } });
  link.dataset.nav = "";
  $("schedule-result").replaceChildren(
    el("span", { text: "Scheduled " }), link,
    el("span", { text: ", due " + formatLocal(made.due) + "." }));
  // The zone stays: the next message is likely scheduled in the same one.
  const zone = $("f-tz").value;
  $("schedule-form").reset();
  $("f-tz").value = zone;
  updateAtHint();
  list.shown = "";
  refresh();
}

// Typing a delay or a time picks that choice.
function pickWhenOnInput() {
  $("f-delay").addEventListener("input", () => { $("f-when-delay").checked = true; });
  $("f-at").addEventListener("input", () => { $("f-when-at").checked = true; });
  $("f-tz").addEventListener("input", () => { $("f-when-at").checked = true; });
}

// The zone field starts as the browser's zone; the hint says how an empty
// field is read.
function updateAtHint() {
  if (!$("f-tz").value) $("f-tz").value = browserZone();
  $("f-at-hint").textContent = "An IANA time zone; this browser's is " +
    (browserZone() || "unknown") + ". Left empty, the time is UTC.";
}

// Every zone the browser knows, as suggestions for the zone field.
function fillZoneList() {
  const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  $("f-tz-zones").replaceChildren(...zones.map((z) => el("option", { attrs: { value: z } })));
}

// ---- the queues ----

const queues = {
  shown: "",          // the JSON last rendered, as for the list
  messagesShown: "",
  messagesKey: "",
  loadSeq: 0,
};

async function loadQueues(view) {
  const seq = ++queues.loadSeq;
  // Another queue or state: the rows of the last one must not stay meanwhile.
  const key = (view.queue || "") + "/" + view.state;
  if (key !== queues.messagesKey) {
    queues.messagesKey = key;
    queues.messagesShown = "";
    $("queue-messages").querySelector("tbody").replaceChildren();
    $("queue-messages").hidden = true;
    $("queue-tabs").replaceChildren();
    showText($("queue-messages-empty"), "");
  }
  const wanted = [api("/api/queues")];
  // A name typed into the address that no queue can have is not sent.
  const nameOk = view.queue && QUEUE_NAME.test(view.queue);
  if (nameOk) {
    const query = new URLSearchParams({ queue: view.queue, state: view.state, limit: String(QUEUE_LIMIT) });
    wanted.push(api("/api/status?" + query.toString()));
  }
  const [allResult, messagesResult] = await Promise.allSettled(wanted);
  if (seq !== queues.loadSeq) return false;
  // Without the queues (an older postdate, say) a queue's messages, which
  // come from /api/status, are still shown.
  if (allResult.status === "rejected") {
    showQueuesFailure(allResult.reason);
    if (allResult.reason.status === 401) return false;
  }
  const known = allResult.status === "fulfilled" && Array.isArray(allResult.value.queues)
    ? allResult.value.queues : null;
  if (known) {
    showText($("queues-error"), "");
    const json = JSON.stringify(known) + "/" + (view.queue || "");
    if (json !== queues.shown) {
      queues.shown = json;
      renderQueues(known, view);
    }
  }
  $("queue-detail").hidden = !view.queue;
  if (!view.queue) return known !== null;
  $("queue-name").textContent = view.queue;
  if (!nameOk || messagesResult.status === "rejected") {
    showText($("queue-error"), !nameOk
      ? "Not a queue name: a name is 1 to 64 of the characters A-Z, a-z, 0-9, _, . and -."
      : messagesResult.reason.message);
    queues.messagesShown = "";
    $("queue-messages").querySelector("tbody").replaceChildren();
    $("queue-messages").hidden = true;
    $("queue-tabs").replaceChildren();
    showText($("queue-messages-empty"), "");
    showText($("queue-messages-more"), "");
    return known !== null;
  }
  showText($("queue-error"), "");
  renderQueueMessages(view, messagesResult.value,
    known ? known.find((q) => q.name === view.queue) : undefined, known !== null);
  return known !== null;
}

function showQueuesFailure(e) {
  const box = $("queues-error");
  if (e.status === 401) {
    showText(box, "");
    $("queues").querySelector("tbody").replaceChildren();
    $("queues").hidden = true;
    $("queue-detail").hidden = true;
    queues.shown = "";
    queues.messagesShown = "";
    showText($("queues-empty"), "Enter the API token above to see the queues.");
    return;
  }
  showText(box, e.status === 404 ? "This postdate has no queues: GET /api/queues answered 404."
    : e.message);
}

// One row per queue: its figures first (what an operator watches), then
// its settings.
function renderQueues(known, view) {
  const tbody = $("queues").querySelector("tbody");
  keepFocus(tbody, () => tbody.replaceChildren(...known.map((q) => queueRow(q, view))));
  $("queues").hidden = known.length === 0;
  showText($("queues-empty"), known.length ? ""
    : "There are no queues yet. Scheduling a message with queue=NAME makes one.");
}

function countCell(n) {
  return el("span", { class: "num", text: String(n ?? 0) });
}

function queueRow(q, view) {
  const link = queueLink(q.name);
  link.dataset.focusKey = "queue:" + q.name;
  if (q.name === view.queue) link.setAttribute("aria-current", "true");
  const row = el("tr", {},
    labelled("Queue", link),
    labelled("Ready", countCell(q.ready)),
    labelled("Pending", countCell(q.pending)),
    labelled("Delivering", countCell(q.delivering)),
    labelled("Failed", el("span", { class: q.failed ? "bad num" : "num", text: String(q.failed ?? 0) })),
    labelled("Delivered", countCell(q.delivered)),
    labelled("Oldest ready", q.ready ? el("span", { class: "num", text: formatSpan(q.oldest_ready_s || 0) })
      : nothing()),
    labelled("Visibility", el("span", { class: "num", text: `${q.visibility} s` })),
    labelled("Max attempts", countCell(q.max_attempts)),
    labelled("Max depth", q.max_depth ? countCell(q.max_depth) : el("span", { class: "muted", text: "no limit" })),
    labelled("Paused", q.paused ? el("span", { class: "state state-paused", text: "paused" })
      : el("span", { class: "muted", text: "no" })));
  row.dataset.queue = q.name;
  if (q.name === view.queue) row.className = "chosen";
  return row;
}

function renderQueueMessages(view, body, q, queuesKnown) {
  $("queue-name").textContent = view.queue;
  const counts = (body && body.counts) || {};
  const tabs = QUEUE_STATES.map((state) => {
    const link = el("a", { class: "tab", attrs: { href: queueHref(view.queue, state) } },
      el("span", { text: state[0].toUpperCase() + state.slice(1) }),
      el("span", { class: "count", text: String(counts[state] || 0) }));
    link.dataset.nav = "";
    link.dataset.state = state;
    if (state === view.state) link.setAttribute("aria-current", "page");
    return link;
  });
  keepFocus($("queue-tabs"), () => $("queue-tabs").replaceChildren(...tabs));
  const messages = (body && body.messages) || [];
  const json = view.queue + "/" + view.state + JSON.stringify(messages);
  if (json !== queues.messagesShown) {
    queues.messagesShown = json;
    const tbody = $("queue-messages").querySelector("tbody");
    keepFocus(tbody, () => tbody.replaceChildren(...messages.map(queueMessageRow)));
  }
  $("queue-messages").hidden = messages.length === 0;
  showText($("queue-messages-empty"), messages.length ? ""
    : queuesKnown && !q ? "No queue has this name (yet): scheduling into it makes it."
      : `No ${view.state} messages in this queue.`);
  showText($("queue-messages-more"), body && body.next_cursor
    ? `The first ${messages.length} are shown; the message list pages through all of them.` : "");
}

function queueMessageRow(m) {
  const open = el("a", { class: "id", text: m.id, attrs: { href: detailHref(m.id), title: m.id } });
  open.dataset.nav = "";
  open.dataset.focusKey = "open:" + m.id;
  return el("tr", {},
    labelled("Id", open),
    labelled("Due", dueBlock(m)),
    labelled("Priority", el("span", { class: "num", text: String(m.priority ?? 0) })),
    labelled("Attempts", el("span", { class: "num", text: `${m.attempts} / ${m.max_attempts}` })),
    labelled("State", stateBadge(m.state)),
    labelled("", actionButton(m)));
}

// ---- health: the banner ----

async function refreshHealth() {
  let health;
  try {
    health = await api("/api/health", { auth: false });
  } catch (e) {
    // Unreachable is said where the list or message would be. A 503 names
    // the programs that do not answer ("down"), or else the database.
    const down = e.body && Array.isArray(e.body.down) ? e.body.down : [];
    showText($("banner"), e.status !== 503 ? ""
      : down.length > 0 ? `postdate is not fully running: ${down.join(", ")} does not answer.`
        : "The database cannot be read: " + e.message);
    return;
  }
  const late = health.oldest_overdue_s || 0;
  const busy = health.delivering || 0;
  // Deliveries in flight beside overdue messages: a dispatcher is there,
  // its slots are taken.
  showText($("banner"), late < OVERDUE_ALARM_S ? ""
    : busy > 0
      ? `Messages are overdue: the oldest is ${formatSpan(late)} late, with ${busy} ` +
        `deliveries in flight: the dispatchers are busy or their targets slow.`
      : `Messages are overdue: the oldest is ${formatSpan(late)} late. Is a dispatcher running?`);
}

// ---- putting it together ----

function showView(moved) {
  const view = currentView();
  $("list-view").hidden = view.name !== "list";
  $("detail-view").hidden = view.name !== "detail";
  $("queues-view").hidden = view.name !== "queues";
  document.querySelector(".layout").classList.toggle("wide", view.name === "queues");
  if (view.name !== "queues") $("queue-detail").hidden = true;
  document.title = view.name === "detail" ? `postdate: message ${view.id}`
    : view.name === "queues" ? (view.queue ? `postdate: queue ${view.queue}` : "postdate: queues")
      : `postdate: ${view.state} messages`;
  for (const [id, name] of [["nav-messages", "list"], ["nav-queues", "queues"]]) {
    if (view.name === name) $(id).setAttribute("aria-current", "page");
    else $(id).removeAttribute("aria-current");
  }
  if (moved) {
    // Say where the user went: focus the heading of the new view.
    const heading = view.name === "detail" ? $("detail-title")
      : view.name === "queues" ? (view.queue ? $("queue-title") : $("queues-title")) : $("list-title");
    if (view.name === "queues" && view.queue) {
      $("queue-name").textContent = view.queue;
      $("queue-detail").hidden = false;
    }
    heading.focus();
  }
  refresh();
}

let refreshing = null;
let refreshAgain = false;

// One refresh at a time; a request made meanwhile runs once it ends.
function refresh() {
  if (refreshing) {
    refreshAgain = true;
    return refreshing;
  }
  refreshing = (async () => {
    do {
      refreshAgain = false;
      await refreshOnce();
    } while (refreshAgain);
    refreshing = null;
  })();
  return refreshing;
}

async function refreshOnce() {
  const view = currentView();
  const loads = [refreshHealth()];
  // While the token is asked for, the API would only answer 401 again.
  if (!waitingForToken) {
    loads.push(view.name === "detail" ? loadDetail(view)
      : view.name === "queues" ? loadQueues(view) : loadList(view));
  }
  const [, ok] = await Promise.all(loads);
  if (ok) {
    $("updated").textContent = "Updated " + new Date().toLocaleTimeString();
  }
  updateRelativeTimes();
}

function tick() {
  // Nothing to watch in a hidden tab, and a dialog's row must stay put.
  if (document.hidden || $("cancel-dialog").open) return;
  refresh();
}

function start() {
  takeTokenFromHash();
  $("forget-token").hidden = !storedToken();
  $("forget-token").addEventListener("click", forgetToken);
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token-input").value.trim();
    if (token) tokenGiven(token);
  });
  $("schedule-form").addEventListener("submit", submitSchedule);
  $("prev-page").addEventListener("click", previousPage);
  $("next-page").addEventListener("click", nextPage);
  $("detail-cancel").addEventListener("click", () => confirmAndCancel(detail.id));
  $("detail-retry").addEventListener("click", () => retryMessage(detail.id));
  document.addEventListener("click", onNavClick);
  window.addEventListener("popstate", () => showView(false));
  window.addEventListener("hashchange", () => {
    if (location.hash.includes("token=")) {
      takeTokenFromHash();
      tokenGiven(storedToken());
    }
  });
  document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
  pickWhenOnInput();
  fillZoneList();
  updateAtHint();
  showView(false);
  setInterval(tick, REFRESH_MS);
}

start();
