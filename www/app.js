// postdate's web page: lists messages from /api/status, shows one with its
// attempts and payload, cancels, retries failed and expired ones, schedules
// from a form (or publishes to a topic, or makes a recurring definition from
// it), shows the queues with their pending and failed messages, the topics
// with their subscriptions (add, replace, remove), and the recurring
// definitions with pause, resume and delete. It talks only to /api/status,
// /api/schedule, /api/cancel, /api/retry, /api/queues, /api/topics,
// /api/subscribe, /api/unsubscribe, /api/recurring[/pause|/resume|/delete]
// and /api/health.
//
// Everything the API returns (URLs, ids, keys, queue, topic and
// subscription names, payloads, errors) is untrusted: it is put on the page
// with textContent or attributes only, never as HTML.
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
  topics.shown = "";
  $("topics-list").replaceChildren();
  $("f-topic-names").replaceChildren();
  queues.shown = "";
  queues.messagesShown = "";
  $("queues").querySelector("tbody").replaceChildren();
  $("queue-messages").querySelector("tbody").replaceChildren();
  $("queue-tabs").replaceChildren();
  recurring.shown = "";
  $("recurring").querySelector("tbody").replaceChildren();
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

// The JSON an API route answers (with withStatus, {status, body}: a 201
// made and a 200 replaced say different things); an ApiError for anything
// but 2xx. A 401 also asks for a token.
async function api(path, { method = "GET", form = null, auth = true, withStatus = false } = {}) {
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
  if (response.ok && body) return withStatus ? { status: response.status, body } : body;
  // A 401 for a token replaced since (a link or the form gave another while
  // this request was under way) says nothing of the token stored now.
  if (response.status === 401 && storedToken() === token) {
    askForToken(token ? "The API did not accept the token you gave. Enter another one."
                      : "The API needs a token.");
  }
  const message = (body && typeof body.error === "string" && body.error) ||
    `The API answered ${response.status} ${response.statusText}`.trim() + ".";
  throw new ApiError(response.status, message, body && body.field, body);
}

// ---- where we are: ?state=&limit= for the list, ?id= for one message,
// ?view=queues[&queue=NAME[&state=failed]] for the queues,
// ?view=topics[&topic=NAME] for the topics, ?view=recurring for the
// recurring definitions ----

function currentView() {
  const query = new URLSearchParams(location.search);
  const id = query.get("id");
  if (id) return { name: "detail", id };
  if (query.get("view") === "recurring") return { name: "recurring" };
  if (query.get("view") === "queues") {
    const state = query.get("state");
    return {
      name: "queues",
      queue: query.get("queue") || null,
      state: QUEUE_STATES.includes(state) ? state : "pending",
    };
  }
  if (query.get("view") === "topics") return { name: "topics", topic: query.get("topic") || null };
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
// other than the default, and the topic and subscription of a publish's
// copy, are said beside it.
function destinationBlock(m) {
  const box = m.queue
    ? el("div", { class: "targets" }, el("span", {},
      el("span", { class: "muted", text: "queue " }), queueLink(m.queue)))
    : targetsBlock(m.urls || []);
  if (m.priority) box.append(el("span", { class: "muted priority", text: "priority " + m.priority }));
  // A copy a publish made says which topic and subscription it is for.
  if (m.topic) {
    box.append(el("span", { class: "muted copy-of" }, el("span", { text: "topic " }), topicLink(m.topic),
      el("span", { text: " · " + (m.subscription || "") })));
  }
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
  ["topic", "Topic", (v) => topicLink(v), { optional: true }],
  ["subscription", "Subscription", (v) => el("code", { text: v }), { optional: true }],
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
  ["recurring", "Recurring", (v) => recurringLink(v), { optional: true }],
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
  return el("span", { class: "url header-names", text: names.join(", ") });
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

const FORM_FIELDS = ["url", "queue", "topic", "delay", "at", "tz", "cron", "name", "payload",
  "content_type", "callback", "max_attempts", "timeout", "priority", "ttl", "method", "header",
  "idempotency_key"];

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
  const topic = $("f-topic").value.trim();
  if (topic) fields.set("topic", topic);
  const when = form.elements.when.value;
  if (when === "delay") fields.set("delay", $("f-delay").value.trim());
  if (when === "at" || when === "cron") {
    if (when === "at") fields.set("at", localInputToAPI($("f-at").value));
    else fields.set("cron", $("f-cron").value.trim());
    const zone = $("f-tz").value.trim();
    if (zone) fields.set("tz", zone);
  }
  const name = $("f-name").value.trim();
  if (when === "cron" && name) fields.set("name", name);
  fields.set("payload", $("f-payload").value);
  for (const name of ["content_type", "callback", "max_attempts", "timeout", "priority", "ttl",
    "idempotency_key"]) {
    const value = $("f-" + name).value.trim();
    if (value) fields.set(name, value);
  }
  setMethodAndHeaders(fields, "f-");
  return fields;
}

// A form's Method select and Headers textarea (ids PREFIX + "method" and
// PREFIX + "header") as the API's method and header fields, the same for the
// schedule and the subscribe form. POST is the default and a queue takes no
// method at all, so POST is left out. One "Name: value" a line, each its own
// header field; the API checks each and names header if one is wrong.
function setMethodAndHeaders(fields, prefix) {
  const method = $(prefix + "method").value;
  if (method !== "POST") fields.set("method", method);
  for (const line of $(prefix + "header").value.split(/\r?\n/)) {
    if (line.trim()) fields.append("header", line.trim());
  }
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
  // "On a schedule" makes a recurring definition of the same fields.
  const repeating = $("schedule-form").elements.when.value === "cron";
  try {
    const made = await api(repeating ? "/api/recurring" : "/api/schedule",
      { method: "POST", form: scheduleFields() });
    if (repeating) definitionMade(made);
    else scheduled(made);
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

function messageLink(id) {
  const link = el("a", { class: "id", text: id, attrs: { href: detailHref(id) } });
  link.dataset.nav = "";
  return link;
}

function scheduled(made) {
  if (Array.isArray(made.deliveries)) {
    published(made);
  } else {
    $("schedule-result").replaceChildren(
      el("span", { text: "Scheduled " }), messageLink(made.id),
      el("span", { text: ", due " + formatLocal(made.due) + "." }));
  }
  // The zone stays: the next message is likely scheduled in the same one.
  const zone = $("f-tz").value;
  $("schedule-form").reset();
  $("f-tz").value = zone;
  updateAtHint();
  list.shown = "";
  refresh();
}

function definitionMade(made) {
  const link = el("a", { class: "id", text: made.name || made.id, attrs: { href: "?view=recurring" } });
  link.dataset.nav = "";
  $("schedule-result").replaceChildren(
    el("span", { text: "Made the recurring definition " }), link,
    el("span", { text: made.next ? ", first at " + formatLocal(made.next) + "." : "." }));
  const zone = $("f-tz").value;
  $("schedule-form").reset();
  $("f-tz").value = zone;
  updateAtHint();
  recurring.shown = "";
  refresh();
}

// Typing a delay, a time or a cron expression picks that choice.
function pickWhenOnInput() {
  $("f-cron").addEventListener("input", () => { $("f-when-cron").checked = true; });
  $("f-delay").addEventListener("input", () => { $("f-when-delay").checked = true; });
  $("f-at").addEventListener("input", () => { $("f-when-at").checked = true; });
  $("f-tz").addEventListener("input", () => {
    if (!$("f-when-cron").checked) $("f-when-at").checked = true;
  });
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

// ---- the topics ----

const TOPIC_NAME = QUEUE_NAME;  // the same syntax as a queue's
const SUBSCRIBE_FIELDS = ["topic", "name", "url", "queue", "callback", "max_attempts", "timeout",
  "method", "header"];

const topics = {
  shown: "",       // the JSON last rendered, as for the list
  scrollTo: null,  // the topic to bring into view once it is rendered
  actionError: "", // what a remove failed with: kept until the next remove or view
  loadSeq: 0,
};

function topicHref(name) {
  const query = new URLSearchParams({ view: "topics" });
  if (name) query.set("topic", name);
  return "?" + query.toString();
}

// A topic's name as a link to it in the Topics view.
function topicLink(name) {
  const link = el("a", { class: "topic-name", text: name, attrs: { href: topicHref(name) } });
  link.dataset.nav = "";
  return link;
}

async function loadTopics(view) {
  const seq = ++topics.loadSeq;
  // A name typed into the address that no topic can have is said so; the
  // topics are fetched without it, so it is never sent.
  const nameOk = !view.topic || TOPIC_NAME.test(view.topic);
  let body;
  try {
    body = await api("/api/topics");
  } catch (e) {
    if (seq === topics.loadSeq) showTopicsFailure(e);
    return false;
  }
  if (seq !== topics.loadSeq) return false;
  const known = Array.isArray(body.topics) ? body.topics : [];
  showText($("topics-error"), [nameOk ? ""
    : `Not a topic name: “${view.topic}”. A name is 1 to 64 of the characters A-Z, a-z, 0-9, _, . and -.`,
  topics.actionError].filter(Boolean).join(" "));
  const json = JSON.stringify(known) + "/" + (view.topic || "");
  if (json !== topics.shown) {
    topics.shown = json;
    renderTopics(known, view);
  }
  fillTopicNames(known);
  if (topics.scrollTo) {
    const chosen = [...$("topics-list").children].find((s) => s.dataset.topic === topics.scrollTo);
    if (chosen) chosen.scrollIntoView({ block: "nearest" });
    topics.scrollTo = null;
  }
  return true;
}

function showTopicsFailure(e) {
  if (e.status === 401) {
    showText($("topics-error"), "");
    topics.shown = "";
    $("topics-list").replaceChildren();
    showText($("topics-empty"), "Enter the API token above to see the topics.");
    return;
  }
  showText($("topics-error"), e.status === 404
    ? "This postdate has no topics: GET /api/topics answered 404." : e.message);
}

function renderTopics(known, view) {
  const box = $("topics-list");
  keepFocus(box, () => box.replaceChildren(...known.map((t) => topicSection(t, view))));
  showText($("topics-empty"), known.length ? ""
    : "There are no topics yet. The first subscription to a name makes the topic.");
}

function topicSection(t, view) {
  const subs = Array.isArray(t.subscriptions) ? t.subscriptions : [];
  const publish = el("button", {
    class: "small", text: "Publish…",
    attrs: { type: "button", "aria-label": "Publish to " + t.name },
  });
  publish.dataset.focusKey = "publish:" + t.name;
  publish.addEventListener("click", () => publishTo(t.name));
  const heading = el("h3", { class: "topic-title" },
    el("span", { class: "muted", text: "Topic " }), el("code", { class: "topic-name", text: t.name }),
    el("span", { class: "muted topic-count",
      text: ` · ${subs.length} subscription${subs.length === 1 ? "" : "s"}` }));
  const section = el("section", { class: "topic" }, el("div", { class: "topic-head" }, heading, publish));
  section.dataset.topic = t.name;
  if (t.name === view.topic) section.setAttribute("aria-current", "true");
  if (!subs.length) {
    section.append(el("p", { class: "empty",
      text: "No subscriptions: a publish to this topic is refused (404) until one is added." }));
    return section;
  }
  const head = el("tr", {}, ...["Subscription", "Destination", "Callback", "Max attempts", "Timeout", "Method",
    "Headers"]
    .map((label) => el("th", { text: label, attrs: { scope: "col" } })),
  el("th", { attrs: { scope: "col" } }, el("span", { class: "visually-hidden", text: "Actions" })));
  section.append(el("div", { class: "table-scroll" },
    el("table", { class: "cards subscriptions" }, el("thead", {}, head),
      el("tbody", {}, ...subs.map((s) => subscriptionRow(t.name, s))))));
  return section;
}

function subscriptionRow(topic, s) {
  const pulled = Boolean(s.queue);
  const destination = pulled
    ? el("div", { class: "targets" }, el("span", {},
      el("span", { class: "muted", text: "queue " }), queueLink(s.queue)))
    : targetsBlock(s.urls || []);
  const remove = el("button", {
    class: "danger small", text: "Remove",
    attrs: { type: "button", "aria-label": `Remove subscription ${s.name} of ${topic}` },
  });
  remove.dataset.focusKey = `remove:${topic}/${s.name}`;
  remove.addEventListener("click", () => confirmAndUnsubscribe(topic, s.name));
  const row = el("tr", {},
    labelled("Subscription", el("code", { class: "subscription", text: s.name })),
    labelled("Destination", destination),
    labelled("Callback", s.callback ? el("span", { class: "url", text: s.callback }) : nothing()),
    // A queue's subscription without its own takes the queue's.
    labelled("Max attempts", s.max_attempts !== null && s.max_attempts !== undefined
      ? el("span", { class: "num", text: String(s.max_attempts) })
      : el("span", { class: "muted", text: pulled ? "the queue's" : "—" })),
    labelled("Timeout", s.timeout !== null && s.timeout !== undefined
      ? el("span", { class: "num", text: s.timeout + " s" }) : nothing()),
    // A queue's subscription has no method (null); header names only, as
    // the API gives them: it never sends a header's value.
    labelled("Method", s.method ? el("code", { text: s.method }) : nothing()),
    labelled("Headers", headerNames(s.headers)),
    labelled("", remove));
  row.dataset.subscription = s.name;
  return row;
}

// A publish made one message per subscription: each is listed, a link to it.
function published(made) {
  const n = made.deliveries.length;
  const items = made.deliveries.map((d) => el("li", {},
    el("code", { class: "subscription", text: d.subscription }),
    el("span", { class: "muted", text: " → " }), messageLink(d.id)));
  $("schedule-result").replaceChildren(
    el("p", { text: `Published to ${made.topic}: ${n} message${n === 1 ? "" : "s"}, due ` +
      formatLocal(made.due) + "." }),
    el("ul", { class: "plain deliveries" }, ...items));
}

// "Publish…" fills the schedule form's topic and takes the user there.
function publishTo(name) {
  $("f-topic").value = name;
  $("f-topic").focus();
  $("f-topic").scrollIntoView({ block: "center" });
}

// The topics known, as suggestions for the schedule form's topic field.
function fillTopicNames(known) {
  $("f-topic-names").replaceChildren(...known.map((t) => el("option", { attrs: { value: t.name } })));
}

let topicNamesAsked = 0;

// Asked when the topic field is used, at most every few seconds.
async function suggestTopicNames() {
  if (waitingForToken || Date.now() - topicNamesAsked < REFRESH_MS) return;
  topicNamesAsked = Date.now();
  try {
    const body = await api("/api/topics");
    if (Array.isArray(body.topics)) fillTopicNames(body.topics);
  } catch {
    // Only suggestions: the field works without them.
  }
}

function askToConfirmUnsubscribe(topic, name) {
  const dialog = $("unsubscribe-dialog");
  $("unsubscribe-what").textContent = `${name} of ${topic}`;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "remove"), { once: true });
  });
}

async function confirmAndUnsubscribe(topic, name) {
  if (!(await askToConfirmUnsubscribe(topic, name))) return;
  try {
    await api("/api/unsubscribe", { method: "POST", form: new URLSearchParams({ topic, name }) });
    topics.actionError = "";
  } catch (e) {
    topics.actionError = `${name} of ${topic}: ${e.message}`;
  }
  showText($("topics-error"), topics.actionError);
  topics.shown = "";
  await refresh();
  // The row and its button are gone: the keyboard user's place is the view.
  if (document.activeElement === document.body) $("topics-title").focus();
}

function subscribeFields() {
  const fields = new URLSearchParams();
  for (const name of ["topic", "name"]) fields.set(name, $("s-" + name).value.trim());
  for (const url of $("s-url").value.split(/\r?\n/)) {
    if (url.trim()) fields.append("url", url.trim());
  }
  for (const name of ["queue", "callback", "max_attempts", "timeout"]) {
    const value = $("s-" + name).value.trim();
    if (value) fields.set(name, value);
  }
  setMethodAndHeaders(fields, "s-");
  return fields;
}

function clearSubscribeErrors() {
  for (const name of SUBSCRIBE_FIELDS) {
    showText($(`s-${name}-error`), "");
    $("s-" + name).removeAttribute("aria-invalid");
  }
  showText($("subscribe-error"), "");
}

// As for the schedule form: the API's error next to the field it names.
function showSubscribeError(e) {
  if (!e.field || !SUBSCRIBE_FIELDS.includes(e.field)) {
    showText($("subscribe-error"), e.status === 401
      ? "The API needs a token: enter it above, then subscribe again." : e.message);
    return;
  }
  showText($(`s-${e.field}-error`), e.message);
  $("s-" + e.field).setAttribute("aria-invalid", "true");
  $("s-" + e.field).focus();
}

async function submitSubscribe(event) {
  event.preventDefault();
  clearSubscribeErrors();
  $("subscribe-result").replaceChildren();
  const button = event.submitter || $("subscribe-form").querySelector("[type=submit]");
  button.disabled = true;
  try {
    const { status, body } = await api("/api/subscribe",
      { method: "POST", form: subscribeFields(), withStatus: true });
    $("subscribe-result").textContent = status === 201
      ? `Subscribed ${body.name} to ${body.topic}.`
      : `Replaced ${body.name} of ${body.topic}: later publishes use the new one.`;
    // The topic stays: the next subscription is likely to the same one.
    const topic = $("s-topic").value;
    $("subscribe-form").reset();
    $("s-topic").value = topic;
    topics.shown = "";
    refresh();
  } catch (e) {
    showSubscribeError(e);
  } finally {
    button.disabled = false;
  }
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

// ---- recurring definitions ----

const recurring = {
  shown: "",   // the JSON last rendered, as for the list
  loadSeq: 0,
};

const WEEKDAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const WEEKDAY_NAMES = { sun: 0, mon: 1, tue: 2, wed: 3, thu: 4, fri: 5, sat: 6 };
const MACROS = {
  "@hourly": "every hour, on the hour", "@daily": "every day at 00:00",
  "@midnight": "every day at 00:00", "@weekly": "every Sunday at 00:00",
  "@monthly": "on the 1st of every month at 00:00", "@yearly": "every 1 January at 00:00",
  "@annually": "every 1 January at 00:00",
};

function twoDigits(n) {
  return String(n).padStart(2, "0");
}

// A day-of-week field as names ("Monday to Friday", "Monday, Thursday"), or
// null when it is more than a list or a range.
function weekdaysInWords(field) {
  const value = (v) => (v.toLowerCase() in WEEKDAY_NAMES ? WEEKDAY_NAMES[v.toLowerCase()]
    : /^[0-7]$/.test(v) ? Number(v) % 7 : null);
  const range = field.match(/^([0-7a-z]{1,3})-([0-7a-z]{1,3})$/i);
  if (range) {
    const a = value(range[1]), b = value(range[2]);
    if (a === null || b === null) return null;
    if (a === 1 && b === 5) return "weekdays";
    return `${WEEKDAYS[a]} to ${WEEKDAYS[b]}`;
  }
  const days = field.split(",").map(value);
  return days.includes(null) ? null : days.map((d) => WEEKDAYS[d]).join(", ");
}

// The common shapes of a cron expression in words, or null for the rest
// (the expression itself is always shown beside it).
function cronInWords(cron) {
  const text = cron.trim().toLowerCase();
  if (MACROS[text]) return MACROS[text];
  const f = text.split(/\s+/);
  if (f.length !== 5) return null;
  const [minute, hour, day, month, weekday] = f;
  const number = /^[0-9]{1,2}$/;
  if (month !== "*") return null;
  if (hour === "*" && day === "*" && weekday === "*") {
    if (minute === "*") return "every minute";
    const step = minute.match(/^\*\/([0-9]{1,2})$/);
    if (step) return `every ${step[1]} minutes`;
    if (number.test(minute)) return `every hour at minute ${Number(minute)}`;
    return null;
  }
  if (!number.test(minute) || !number.test(hour)) return null;
  const at = `at ${twoDigits(Number(hour))}:${twoDigits(Number(minute))}`;
  if (day === "*" && weekday === "*") return "every day " + at;
  if (day === "*") {
    const days = weekdaysInWords(weekday);
    return days ? `on ${days} ${at}` : null;
  }
  if (weekday === "*" && number.test(day)) return `on day ${Number(day)} of every month ${at}`;
  return null;
}

function recurringLink(id) {
  const link = el("a", { class: "id", text: id, attrs: { href: "?view=recurring", title: id } });
  link.dataset.nav = "";
  return link;
}

async function loadRecurring() {
  const seq = ++recurring.loadSeq;
  let body;
  try {
    body = await api("/api/recurring");
  } catch (e) {
    if (seq !== recurring.loadSeq) return false;
    recurring.shown = "";
    if (e.status === 401) {
      $("recurring").querySelector("tbody").replaceChildren();
      $("recurring").hidden = true;
      showText($("recurring-error"), "");
      showText($("recurring-empty"), "Enter the API token above to see the recurring definitions.");
    } else {
      showText($("recurring-error"), e.status === 404
        ? "This postdate has no recurring definitions: GET /api/recurring answered 404." : e.message);
    }
    return false;
  }
  if (seq !== recurring.loadSeq) return false;
  showText($("recurring-error"), "");
  const defs = Array.isArray(body.recurring) ? body.recurring : [];
  const json = JSON.stringify(defs);
  if (json !== recurring.shown) {
    recurring.shown = json;
    const tbody = $("recurring").querySelector("tbody");
    keepFocus(tbody, () => tbody.replaceChildren(...defs.map(recurringRow)));
  }
  $("recurring").hidden = defs.length === 0;
  showText($("recurring-empty"), defs.length ? ""
    : "There are no recurring definitions yet. Make one with the form: “On a schedule (cron)”.");
  return true;
}

function recurringRow(d) {
  const words = cronInWords(d.cron);
  const schedule = el("div", { class: "schedule" },
    el("code", { class: "cron", text: d.cron }),
    words ? el("span", { class: "cron-words", text: words }) : null,
    el("span", { class: "muted zone", text: d.tz }));
  // The next occurrence on this browser's clock, and on the zone's.
  const next = d.next ? el("div", {}, timeBlock(d.next, "late"),
    d.next_local ? el("span", { class: "muted zone-time",
      text: `${d.next_local.slice(11, 16)} in ${d.tz}` }) : null) : nothing();
  const destination = d.queue ? queueLink(d.queue) : targetsBlock(d.urls || []);
  const button = (label, action, cls) => {
    const b = el("button", { class: "small " + cls, text: label,
      attrs: { type: "button", "aria-label": `${label} ${d.name || d.id}` } });
    b.dataset.focusKey = action + ":" + d.id;
    b.addEventListener("click", () => changeDefinition(d.id, action));
    return b;
  };
  const row = el("tr", {},
    labelled("Definition", el("div", {},
      d.name ? el("strong", { class: "def-name", text: d.name }) : null,
      el("code", { class: "id", text: d.id, attrs: { title: d.id } }))),
    labelled("Schedule", schedule),
    labelled("Next", next),
    labelled("Last", d.last ? timeBlock(d.last, "ago") : nothing()),
    labelled("Destination", destination),
    labelled("State", el("span", { class: d.paused ? "state state-paused" : "state state-pending",
      text: d.paused ? "paused" : "active" })),
    labelled("", el("span", { class: "row-actions" },
      d.paused ? button("Resume", "resume", "") : button("Pause", "pause", ""),
      button("Delete", "delete", "danger"))));
  row.dataset.recurring = d.id;
  return row;
}

function askToConfirmDelete(id) {
  const dialog = $("delete-dialog");
  $("delete-id").textContent = id;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "delete"), { once: true });
  });
}

async function changeDefinition(id, action) {
  if (action === "delete" && !(await askToConfirmDelete(id))) return;
  try {
    await api("/api/recurring/" + action, { method: "POST", form: new URLSearchParams({ id }) });
    showText($("recurring-error"), "");
  } catch (e) {
    showText($("recurring-error"), e.message);
  }
  recurring.shown = "";
  refresh();
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
  $("topics-view").hidden = view.name !== "topics";
  $("list-view").hidden = view.name !== "list";
  $("detail-view").hidden = view.name !== "detail";
  $("queues-view").hidden = view.name !== "queues";
  $("recurring-view").hidden = view.name !== "recurring";
  document.querySelector(".layout").classList.toggle("wide",
    view.name === "queues" || view.name === "recurring");
  if (view.name !== "queues") $("queue-detail").hidden = true;
  document.title = view.name === "detail" ? `postdate: message ${view.id}`
    : view.name === "queues" ? (view.queue ? `postdate: queue ${view.queue}` : "postdate: queues")
      : view.name === "recurring" ? "postdate: recurring definitions"
        : view.name === "topics" ? "postdate: topics" : `postdate: ${view.state} messages`;
  for (const [id, name] of [["nav-messages", "list"], ["nav-queues", "queues"],
    ["nav-topics", "topics"], ["nav-recurring", "recurring"]]) {
    if (view.name === name) $(id).setAttribute("aria-current", "page");
    else $(id).removeAttribute("aria-current");
  }
  if (moved) {
    // Say where the user went: focus the heading of the new view.
    const heading = view.name === "detail" ? $("detail-title")
      : view.name === "queues" ? (view.queue ? $("queue-title") : $("queues-title"))
        : view.name === "recurring" ? $("recurring-title")
          : view.name === "topics" ? $("topics-title") : $("list-title");
    if (view.name === "queues" && view.queue) {
      $("queue-name").textContent = view.queue;
      $("queue-detail").hidden = false;
    }
    heading.focus();
  }
  if (moved) topics.actionError = "";
  // A chosen topic is brought into view, and is the one the form adds to.
  if (view.name === "topics" && view.topic && TOPIC_NAME.test(view.topic)) {
    topics.scrollTo = view.topic;
    if (!$("s-topic").value) $("s-topic").value = view.topic;
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
      : view.name === "queues" ? loadQueues(view)
        : view.name === "recurring" ? loadRecurring()
          : view.name === "topics" ? loadTopics(view) : loadList(view));
  }
  const [, ok] = await Promise.all(loads);
  if (ok) {
    $("updated").textContent = "Updated " + new Date().toLocaleTimeString();
  }
  updateRelativeTimes();
}

function tick() {
  // Nothing to watch in a hidden tab, and a dialog's row must stay put
  // (whichever dialog it is).
  if (document.hidden || document.querySelector("dialog[open]")) return;
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
  $("subscribe-form").addEventListener("submit", submitSubscribe);
  $("f-topic").addEventListener("focus", suggestTopicNames);
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
