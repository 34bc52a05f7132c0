// The web page in a real browser: Debian's chromium, driven by playwright-core,
// against a real postdate (nginx + FastCGI + SQLite) that tests/browser/run.py
// starts and passes in through the environment. Every target URL is on
// 127.0.0.1, and the browser may load nothing but the stack's own address.
//
// A tiny runner: each test gets a fresh browser context (so an empty
// localStorage); the last line is "browser: N passed, N failed".
// Usage (through run.py): node page.test.mjs [SUBSTRING...]

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const OUT = path.join(HERE, "out");
const BASE = process.env.POSTDATE_URL || "";
const TOKEN = process.env.POSTDATE_TOKEN || "";
const CONF = process.env.POSTDATE_CONF || "";
const TOP = process.env.POSTDATE_TOP || path.resolve(HERE, "../..");

// Nothing listens on the discard port: messages aimed here stay pending
// (no dispatcher runs) or fail at once (when a test runs one).
const NOWHERE = "http://127.0.0.1:9/never";
// The browser's zone is not UTC, and not a whole hour away from it, so a
// conversion the page forgets shows.
const ZONE = "Asia/Kolkata";
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 375, height: 812 };
const TEST_TIMEOUT_MS = 30000;
// The page's own threshold for the overdue banner (OVERDUE_ALARM_S in app.js).
const OVERDUE_ALARM_S = 10;

// ---- the API, straight (not through the page) ----

function formBody(fields) {
  const body = new URLSearchParams();
  for (const [name, value] of Object.entries(fields)) {
    for (const v of [].concat(value)) body.append(name, String(v));
  }
  return body;
}

async function apiRequest(method, route, fields = null, token = TOKEN) {
  const headers = {};
  if (token) headers.Authorization = "Bearer " + token;
  let body;
  if (fields) {
    body = formBody(fields);
    headers["Content-Type"] = "application/x-www-form-urlencoded";
  }
  const r = await fetch(BASE + route, { method, headers, body });
  const text = await r.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    // left null: the assertion that uses it says what came instead
  }
  return { status: r.status, json, text };
}

async function schedule(fields) {
  const r = await apiRequest("POST", "/api/schedule", { url: NOWHERE, delay: "1h", ...fields });
  assert.equal(r.status, 201, r.text);
  return r.json;
}

async function messageStatus(id) {
  const r = await apiRequest("GET", "/api/status?" + new URLSearchParams({ id }));
  assert.equal(r.status, 200, r.text);
  return r.json;
}

async function listPage(query) {
  const r = await apiRequest("GET", "/api/status?" + new URLSearchParams(query));
  assert.equal(r.status, 200, r.text);
  return r.json;
}

async function health() {
  const r = await apiRequest("GET", "/api/health", null, null);
  assert.equal(r.status, 200, r.text);
  return r.json;
}

// A marker that makes this run's URLs easy to find in the page.
function unique(word) {
  return `${word}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 7)}`;
}

// ---- waiting ----

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Runs check until it stops throwing, or throws its last error at the timeout.
async function eventually(check, timeoutMs = 8000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await sleep(100);
    }
  }
}

// ---- the page ----

async function openPage(page, query = "", { withToken = true } = {}) {
  await page.goto(BASE + "/" + query + (withToken ? "#token=" + encodeURIComponent(TOKEN) : ""));
  if (withToken) await listOrDetailLoaded(page);
}

// The page writes "Updated ..." after each answer it got.
async function listOrDetailLoaded(page) {
  await page.locator("#updated", { hasText: "Updated" }).waitFor();
}

async function shownIds(page) {
  return page.locator("#messages tbody a.id").allTextContents();
}

function rowOf(page, id) {
  return page.locator("#messages tbody tr").filter({ has: page.locator("a.id", { hasText: id }) });
}

async function screenshot(page, name) {
  mkdirSync(OUT, { recursive: true });
  await page.screenshot({ path: path.join(OUT, name + ".png"), fullPage: true });
}

// The wall-clock time in ZONE, as a datetime-local input writes it: without
// the seconds when they are :00 (fill() refuses a value the input changes).
function localInputValue(ms) {
  const parts = Object.fromEntries(new Intl.DateTimeFormat("en-CA", {
    timeZone: ZONE, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  }).formatToParts(new Date(ms)).map((p) => [p.type, p.value]));
  const seconds = parts.second === "00" ? "" : ":" + parts.second;
  return `${parts.year}-${parts.month}-${parts.day}T${parts.hour}:${parts.minute}${seconds}`;
}

function localClock(iso) {
  return new Intl.DateTimeFormat("en-GB", {
    timeZone: ZONE, hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  }).format(new Date(iso));
}

// ---- a receiver on loopback, and a dispatcher run once ----

// Answers /ok with 200 and anything else with 503, and keeps what it was
// sent (method, url, headers) in requests.
async function startSink() {
  const requests = [];
  const server = http.createServer((req, res) => {
    requests.push({ method: req.method, url: req.url, headers: req.headers });
    req.resume();
    req.on("end", () => {
      res.writeHead(req.url.startsWith("/ok") ? 200 : 503, { "Content-Type": "text/plain" });
      res.end(req.url.startsWith("/ok") ? "fine" : "busy");
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${server.address().port}`, requests, close: () => server.close() };
}

// bin/dispatch --once: delivers what is due now, then exits.
function dispatchOnce() {
  return new Promise((resolve, reject) => {
    const child = spawn(path.join(TOP, "bin", "dispatch"), ["-c", CONF, "--once"],
      { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d) => { stderr += d; });
    child.on("error", reject);
    child.on("exit", (code) => code === 0 ? resolve(stderr)
      : reject(new Error(`dispatch --once exited ${code}: ${stderr}`)));
  });
}

// ---- the tests ----

const tests = [];
const test = (name, fn, options = {}) => tests.push({ name, fn, options });

test("the list shows pending messages scheduled through the API, by due time", async ({ page }) => {
  const mark = unique("list");
  const late = await schedule({ url: `${NOWHERE}/${mark}/c`, delay: "3h" });
  const soon = await schedule({ url: `${NOWHERE}/${mark}/a`, delay: "1h" });
  const middle = await schedule({ url: `${NOWHERE}/${mark}/b`, delay: "2h", max_attempts: 3 });
  const overdueAtStart = (await health()).oldest_overdue_s;
  await openPage(page);

  const ids = await shownIds(page);
  const ours = ids.filter((id) => [late.id, soon.id, middle.id].includes(id));
  assert.deepEqual(ours, [soon.id, middle.id, late.id]);
  const api = await listPage({ state: "pending", limit: "50" });
  assert.deepEqual(ids, api.messages.map((m) => m.id), "the page shows the API's order");

  const row = rowOf(page, middle.id);
  assert.equal(await row.locator("td[data-label=Destination]").innerText(), `${NOWHERE}/${mark}/b`);
  assert.equal(await row.locator("td[data-label=Attempts]").innerText(), "0 / 3");
  assert.equal(await row.locator("td[data-label=State]").innerText(), "pending");
  assert.equal(await row.locator("time").getAttribute("datetime"), middle.due);
  const due = await row.locator("td[data-label=Due]").innerText();
  assert.ok(due.includes(localClock(middle.due)), `local time ${localClock(middle.due)} in ${due}`);
  assert.match(due, /in (1 h 59 min|2 h)/);
  assert.equal(await row.getByRole("button", { name: "Cancel message " + middle.id }).count(), 1);

  // The counts per state are there as tabs.
  const pendingTab = page.locator("#tabs a[data-state=pending]");
  assert.equal(await pendingTab.getAttribute("aria-current"), "page");
  assert.equal(await pendingTab.locator(".count").innerText(), String(api.counts.pending));
  // A fresh stack has nothing overdue yet, so there is no banner.
  if (overdueAtStart < OVERDUE_ALARM_S) assert.equal(await page.locator("#banner").isVisible(), false);
});

test("a state tab shows only that state, with the API's counts", async ({ page }) => {
  const mark = unique("filter");
  const kept = await schedule({ url: `${NOWHERE}/${mark}/kept` });
  const gone = await schedule({ url: `${NOWHERE}/${mark}/gone` });
  assert.equal((await apiRequest("POST", "/api/cancel", { id: gone.id })).status, 200);
  await openPage(page);
  assert.ok((await shownIds(page)).includes(kept.id));
  assert.ok(!(await shownIds(page)).includes(gone.id), "a cancelled message is not pending");

  await page.locator("#tabs a[data-state=cancelled]").click();
  await eventually(async () => assert.ok((await shownIds(page)).includes(gone.id)));
  assert.match(page.url(), /\?state=cancelled$/);
  assert.ok(!(await shownIds(page)).includes(kept.id));
  const states = await page.locator("#messages td[data-label=State]").allInnerTexts();
  assert.ok(states.length > 0 && states.every((s) => s === "cancelled"), states.join());
  assert.equal(await page.locator("#tabs a[data-state=cancelled]").getAttribute("aria-current"), "page");

  const counts = (await listPage({ state: "all", limit: "1" })).counts;
  for (const [state, n] of Object.entries(counts)) {
    assert.equal(await page.locator(`#tabs a[data-state=${state}] .count`).innerText(), String(n), state);
  }
  const all = Object.values(counts).reduce((a, b) => a + b, 0);
  assert.equal(await page.locator("#tabs a[data-state=all] .count").innerText(), String(all));

  await page.locator("#tabs a[data-state=all]").click();
  await eventually(async () => {
    const ids = await shownIds(page);
    assert.ok(ids.includes(kept.id) && ids.includes(gone.id));
  });
});

test("paging follows the API's cursor forward and back", async ({ page }) => {
  for (let i = 0; i < 7; i++) await schedule({ delay: `${5 + i}h` });
  const first = await listPage({ state: "pending", limit: "3" });
  const second = await listPage({ state: "pending", limit: "3", cursor: first.next_cursor });
  assert.ok(first.next_cursor && second.messages.length === 3, "the API has two pages");

  await openPage(page, "?limit=3");
  assert.deepEqual(await shownIds(page), first.messages.map((m) => m.id));
  assert.equal(await page.locator("#page-info").innerText(), "1–3");
  assert.equal(await page.locator("#prev-page").isDisabled(), true);

  await page.locator("#next-page").click();
  await eventually(async () => assert.deepEqual(await shownIds(page), second.messages.map((m) => m.id)));
  assert.equal(await page.locator("#page-info").innerText(), "4–6");

  await page.locator("#prev-page").click();
  await eventually(async () => assert.deepEqual(await shownIds(page), first.messages.map((m) => m.id)));
  assert.equal(await page.locator("#prev-page").isDisabled(), true);
});

test("cancelling from the page (after confirming) cancels the message in the API", async ({ page }) => {
  const m = await schedule({ delay: "10m" });
  await openPage(page);
  await rowOf(page, m.id).getByRole("button", { name: "Cancel message " + m.id }).click();
  const dialog = page.locator("#cancel-dialog");
  await dialog.waitFor();
  assert.equal(await dialog.locator("#cancel-id").innerText(), m.id);
  assert.equal((await messageStatus(m.id)).state, "pending", "nothing happens before confirming");

  await dialog.getByRole("button", { name: "Cancel message" }).click();
  await eventually(async () => assert.equal((await messageStatus(m.id)).state, "cancelled"));
  await eventually(async () => assert.equal(await rowOf(page, m.id).count(), 0));
  assert.equal(await page.locator("#list-error").isVisible(), false);
});

test("the cancel dialog works from the keyboard, and Escape keeps the message", async ({ page }) => {
  const m = await schedule({ delay: "20m" });
  await openPage(page);
  const button = rowOf(page, m.id).getByRole("button", { name: "Cancel message " + m.id });
  await button.focus();
  await page.keyboard.press("Enter");
  await page.locator("#cancel-dialog").waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.textContent), "Keep it",
    "the safe choice has the focus");
  await page.keyboard.press("Escape");
  await page.locator("#cancel-dialog").waitFor({ state: "hidden" });
  assert.equal(await page.evaluate(() => document.activeElement.getAttribute("aria-label")),
    "Cancel message " + m.id, "the focus is back where it was");
  await sleep(300);
  assert.equal((await messageStatus(m.id)).state, "pending");

  // The id is a link that opens the message with Enter.
  await rowOf(page, m.id).locator("a.id").focus();
  await page.keyboard.press("Enter");
  await page.locator("#detail-view").waitFor();
  await eventually(async () => assert.equal(await page.locator("#detail-id").innerText(), m.id));
});

test("the form schedules a message that the API then returns", async ({ page }) => {
  const mark = unique("form");
  await openPage(page);
  await page.getByLabel("Target URLs").fill(`${NOWHERE}/${mark}/1\n\n  ${NOWHERE}/${mark}/2  \n`);
  await page.getByLabel("After a delay").check();
  await page.getByLabel("Delay", { exact: true }).fill("15m");
  await page.getByLabel("Payload").fill("hello from the form");
  await page.getByLabel("Content type").fill("application/x-postdate-test");
  await page.getByLabel(/Callback URL/).fill(`${NOWHERE}/${mark}/callback`);
  const before = Date.now();
  await page.getByRole("button", { name: "Schedule", exact: true }).click();

  const link = page.locator("#schedule-result a.id");
  await link.waitFor();
  const id = await link.innerText();
  const m = await messageStatus(id);
  assert.deepEqual(m.urls, [`${NOWHERE}/${mark}/1`, `${NOWHERE}/${mark}/2`]);
  assert.equal(m.callback, `${NOWHERE}/${mark}/callback`);
  assert.equal(m.content_type, "application/x-postdate-test");
  assert.equal(m.payload_bytes, "hello from the form".length);
  assert.equal(m.state, "pending");
  const inMs = Date.parse(m.due) - before;
  assert.ok(inMs > 14 * 60e3 && inMs < 16 * 60e3, `due in ${inMs} ms`);
  // The list shows it without a reload, and the form is ready for the next one.
  await eventually(async () => assert.equal(await rowOf(page, id).count(), 1));
  assert.equal(await page.getByLabel("Target URLs").inputValue(), "");
});

test("the form sends a method and headers; the detail shows the method and header names only", async ({ page }) => {
  const secret = unique("Bearer s3cret");
  const sink = await startSink();
  try {
    await openPage(page);
    // The subscribe form (in the hidden Topics view) has its own Method and Headers.
    const form = page.locator("#schedule-form");
    await page.getByLabel("Target URLs").fill(`${sink.url}/ok/headers`);
    await page.locator("#more-options summary").click();
    // A bad line is the API's 400 naming header, shown at the Headers field.
    await form.getByLabel("Headers").fill(`Host: ${secret}`);
    await page.getByRole("button", { name: "Schedule", exact: true }).click();
    await page.locator("#f-header-error").waitFor();
    assert.match(await page.locator("#f-header-error").innerText(), /Host/);
    assert.equal(await form.getByLabel("Headers").getAttribute("aria-invalid"), "true");

    await form.getByLabel("Method").selectOption("PUT");
    await screenshot(page, "form-headers");
    await form.getByLabel("Headers").fill(`Authorization: ${secret}\n\n  X-Trace: t-1  \n`);
    await page.getByRole("button", { name: "Schedule", exact: true }).click();
    const link = page.locator("#schedule-result a.id");
    await link.waitFor();
    const id = await link.innerText();
    const m = await messageStatus(id);
    assert.equal(m.method, "PUT");
    assert.deepEqual(m.headers, ["Authorization", "X-Trace"]);
    assert.equal(await form.getByLabel("Headers").inputValue(), "", "the form is cleared");

    await dispatchOnce();
    const got = sink.requests.filter((r) => r.url === "/ok/headers");
    assert.equal(got.length, 1, JSON.stringify(sink.requests));
    assert.equal(got[0].method, "PUT");
    assert.equal(got[0].headers.authorization, secret);
    assert.equal(got[0].headers["x-trace"], "t-1");

    await openPage(page, "?" + new URLSearchParams({ id }));
    const field = (label) => page.locator("#detail-fields .field-row")
      .filter({ has: page.locator("dt", { hasText: new RegExp("^" + label + "$") }) }).locator("dd");
    await eventually(async () => assert.equal(await field("State").innerText(), "delivered"));
    assert.equal(await field("Method").innerText(), "PUT");
    assert.equal(await field("Headers").innerText(), "Authorization, X-Trace");
    assert.ok(!(await page.content()).includes(secret), "the page shows a header value");
    await openPage(page, "?state=all");
    await eventually(async () => assert.equal(await rowOf(page, id).count(), 1));
    assert.ok(!(await page.content()).includes(secret), "the list shows a header value");
    await screenshot(page, "headers");
  } finally {
    sink.close();
  }
});

test("a local date and time in the form is the instant the API stores", async ({ page }) => {
  // One on a whole minute (the input drops ":00") and one with seconds.
  const minute = Math.floor((Date.now() + 2 * 3600e3) / 60e3) * 60e3;
  await openPage(page);
  let previous = null;
  for (const when of [minute, minute + 17e3]) {
    await page.getByLabel("Target URLs").fill(NOWHERE);
    await page.getByLabel("Local date and time", { exact: true }).fill(localInputValue(when));
    assert.equal(await page.getByLabel("At a local date and time").isChecked(), true,
      "typing a time picks that choice");
    await page.getByRole("button", { name: "Schedule", exact: true }).click();
    const id = await eventually(async () => {
      const shown = await page.locator("#schedule-result a.id").innerText({ timeout: 500 });
      assert.notEqual(shown, previous);
      return shown;
    });
    previous = id;
    assert.equal((await messageStatus(id)).due, new Date(when).toISOString());
  }
  // ICU names this zone by its older alias, Asia/Calcutta.
  assert.match(await page.locator("#f-at-hint").innerText(), /Asia\/(Kolkata|Calcutta)/);
});

// Regression: the page converted a local time to an instant in the browser
// (new Date(value).toISOString()), so a time in a DST gap became another
// instant while the API refuses that local time. The page now sends the
// local time and the zone as the API reads them, and shows the API's answer.
test("the form sends a local time as at and tz, and shows the API's error for a DST gap", async ({ page }) => {
  await openPage(page);
  const sent = [];
  page.on("request", (req) => {
    if (req.method() === "POST" && new URL(req.url()).pathname === "/api/schedule") {
      sent.push(new URLSearchParams(req.postData() || ""));
    }
  });
  const pendingBefore = (await listPage({ state: "all", limit: "1" })).counts.pending;
  const expected = (await apiRequest("POST", "/api/schedule",
    { url: NOWHERE, at: "2026-03-29 02:30", tz: "Europe/Berlin" })).json;
  assert.equal(expected.field, "at");

  await page.getByLabel("Target URLs").fill(NOWHERE);
  await page.getByLabel("Local date and time", { exact: true }).fill("2026-03-29T02:30");
  await page.getByLabel("Time zone", { exact: true }).fill("Europe/Berlin");
  await page.getByRole("button", { name: "Schedule", exact: true }).click();
  const atError = page.locator("#f-at-error");
  await atError.waitFor();
  assert.equal(await atError.innerText(), expected.error);
  assert.equal(sent.length, 1);
  assert.equal(sent[0].get("at"), "2026-03-29 02:30");
  assert.equal(sent[0].get("tz"), "Europe/Berlin");
  assert.equal((await listPage({ state: "all", limit: "1" })).counts.pending, pendingBefore,
    "nothing was scheduled");
  await screenshot(page, "form-dst-gap");

  // A time that exists is converted by the API, in the zone given.
  await page.getByLabel("Local date and time", { exact: true }).fill("2030-07-01T12:00:30");
  await page.getByRole("button", { name: "Schedule", exact: true }).click();
  const link = page.locator("#schedule-result a.id");
  await link.waitFor();
  assert.equal(sent.length, 2);
  assert.equal(sent[1].get("at"), "2030-07-01 12:00:30");
  assert.equal(sent[1].get("tz"), "Europe/Berlin");
  assert.equal((await messageStatus(await link.innerText())).due, "2030-07-01T10:00:30.000Z");
  assert.equal(await atError.isVisible(), false);
});

test("an error from the API appears at the field it names", async ({ page }) => {
  await openPage(page);
  const pendingBefore = (await listPage({ state: "all", limit: "1" })).counts.pending;
  const expected = (await apiRequest("POST", "/api/schedule", { url: NOWHERE, delay: "5 minutes", payload: "" })).json;
  assert.equal(expected.field, "delay");

  await page.getByLabel("Target URLs").fill(NOWHERE);
  await page.getByLabel("Delay", { exact: true }).fill("5 minutes");
  await page.getByRole("button", { name: "Schedule", exact: true }).click();
  const delayError = page.locator("#f-delay-error");
  await delayError.waitFor();
  assert.equal(await delayError.innerText(), expected.error);
  assert.equal(await page.getByLabel("Delay", { exact: true }).getAttribute("aria-invalid"), "true");
  assert.match(await page.getByLabel("Delay", { exact: true }).getAttribute("aria-describedby"), /f-delay-error/);
  assert.equal(await page.locator("#f-url-error").isVisible(), false);
  assert.equal(await page.locator("#schedule-error").isVisible(), false);
  await screenshot(page, "form-error");

  // Fixing that field and breaking another moves the message there.
  await page.getByLabel("Target URLs").fill("ftp://127.0.0.1/nope");
  await page.getByLabel("Delay", { exact: true }).fill("5m");
  await page.getByRole("button", { name: "Schedule", exact: true }).click();
  await page.locator("#f-url-error").waitFor();
  assert.match(await page.locator("#f-url-error").innerText(), /URL/);
  assert.equal(await delayError.isVisible(), false);

  // A field inside "More options" is opened to show its error.
  await page.getByLabel("Target URLs").fill(NOWHERE);
  await page.locator("#more-options summary").click();
  await page.getByLabel("Delivery rounds").fill("101");
  await page.locator("#more-options summary").click();
  await page.getByRole("button", { name: "Schedule", exact: true }).click();
  await page.locator("#f-max_attempts-error").waitFor();
  assert.match(await page.locator("#f-max_attempts-error").innerText(), /max_attempts/);
  assert.equal(await page.locator("#more-options").getAttribute("open"), "");

  assert.equal(await page.locator("#schedule-result").innerText(), "");
  assert.equal((await listPage({ state: "all", limit: "1" })).counts.pending, pendingBefore,
    "nothing was scheduled");
});

test("a 401 asks for the token, and the token given is then used", async ({ page }) => {
  const m = await schedule({ delay: "30m" });
  await openPage(page, "", { withToken: false });
  const panel = page.locator("#token-panel");
  await panel.waitFor();
  assert.match(await page.locator("#token-reason").innerText(), /needs a token/);
  assert.equal(await page.evaluate(() => document.activeElement.id), "token-input");
  assert.equal(await page.locator("#messages tbody tr").count(), 0);
  await page.locator("#empty", { hasText: "Enter the API token" }).waitFor();
  assert.equal(await page.locator("#list-error").isVisible(), false);
  await screenshot(page, "token");

  await page.getByLabel("Token", { exact: true }).fill("not-the-token");
  await page.getByRole("button", { name: "Use token" }).click();
  await eventually(async () =>
    assert.match(await page.locator("#token-reason").innerText(), /did not accept/));
  assert.equal(await panel.isVisible(), true);

  await page.getByLabel("Token", { exact: true }).fill(TOKEN);
  await page.getByRole("button", { name: "Use token" }).click();
  await panel.waitFor({ state: "hidden" });
  await eventually(async () => assert.ok((await shownIds(page)).includes(m.id)));
  assert.equal(await page.evaluate(() => localStorage.getItem("postdate.token")), TOKEN);

  // Forgetting it clears the token and what it showed, and asks again.
  await page.getByRole("button", { name: "Forget token" }).click();
  await panel.waitFor();
  assert.equal(await page.evaluate(() => localStorage.getItem("postdate.token")), null);
  assert.equal(await page.locator("#messages tbody tr").count(), 0);
});

// Regression: a URL's password (http://user:secret@host/) was shown in
// clear in the list and the detail view.
test("a password in a target or callback URL is shown masked, in the list and the detail", async ({ page }) => {
  const secret = unique("pw");
  const m = await schedule({
    url: `http://alice:${secret}@127.0.0.1:9/masked`, callback: `http://bob:${secret}@127.0.0.1:9/cb`,
    delay: "30m",
  });
  await openPage(page);
  const row = rowOf(page, m.id);
  await eventually(async () => assert.equal(await row.count(), 1));
  assert.match(await row.innerText(), /alice:\*\*\*@127\.0\.0\.1:9\/masked/);
  assert.equal((await page.content()).includes(secret), false, "the password is on the page");
  await row.locator("a.id").click();
  await page.locator("#detail-view").waitFor();
  await eventually(async () => assert.match(await page.locator("#detail-view").innerText(),
    /bob:\*\*\*@127\.0\.0\.1:9\/cb/));
  assert.equal((await page.content()).includes(secret), false, "the password is on the page");
});

test("a #token= link is kept and then removed from the address bar", async ({ page }) => {
  await page.goto(`${BASE}/?state=all#token=${encodeURIComponent(TOKEN)}`);
  await listOrDetailLoaded(page);
  assert.equal(page.url(), `${BASE}/?state=all`);
  assert.equal(await page.evaluate(() => localStorage.getItem("postdate.token")), TOKEN);
  assert.equal(await page.locator("#token-panel").isVisible(), false);
  await page.reload();
  await listOrDetailLoaded(page);
  assert.equal(await page.locator("#token-panel").isVisible(), false);
  assert.ok((await shownIds(page)).length > 0);
});

// Regression: a token given (by a #token= link) while the first, tokenless
// request was still waiting for its 401 was overridden by that 401, and the
// page kept asking for a token it had been given.
test("a token given while a tokenless request is answered 401 is kept and used", async ({ page }) => {
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  let first = true;
  await page.route("**/api/status**", async (route) => {
    if (first && !route.request().headers().authorization) {
      first = false;
      await held;             // answered (401) only once the token is given
    }
    await route.continue();
  });
  await page.goto(BASE + "/");
  await page.evaluate((token) => { location.hash = "token=" + encodeURIComponent(token); }, TOKEN);
  await eventually(async () => assert.equal(
    await page.evaluate(() => localStorage.getItem("postdate.token")), TOKEN));
  release();
  await listOrDetailLoaded(page);
  assert.equal(await page.locator("#token-panel").isHidden(), true);
});

test("a #token= link asks before replacing a stored token, and keeps it when declined", async ({ page }) => {
  const other = "another-token-0123456789";
  const asked = [];
  await openPage(page);
  // The same token again: nothing to ask.
  page.on("dialog", (d) => { asked.push(d.message()); d.dismiss(); });
  await page.goto(`${BASE}/?state=all#token=${encodeURIComponent(TOKEN)}`);
  await listOrDetailLoaded(page);
  assert.deepEqual(asked, []);
  // Another token, declined: the stored one stays, and the link is gone.
  await page.goto(`${BASE}/?state=all#token=${encodeURIComponent(other)}`);
  await eventually(() => assert.equal(asked.length, 1));
  assert.match(asked[0], /replace/i);
  await eventually(() => assert.equal(page.url(), `${BASE}/?state=all`));
  assert.equal(await page.evaluate(() => localStorage.getItem("postdate.token")), TOKEN);
  // A fresh load with the link asks too; accepted, the new token is stored.
  page.removeAllListeners("dialog");
  page.on("dialog", (d) => { asked.push(d.message()); d.accept(); });
  await page.goto(`${BASE}/`);
  await page.goto(`${BASE}/#token=${encodeURIComponent(other)}`);
  await eventually(() => assert.equal(asked.length, 2));
  await eventually(async () =>
    assert.equal(await page.evaluate(() => localStorage.getItem("postdate.token")), other));
  assert.equal(page.url(), `${BASE}/`);
});

test("the page runs under its Content-Security-Policy without a violation", async ({ page }) => {
  await page.addInitScript(() => {
    window.__violations = [];
    document.addEventListener("securitypolicyviolation",
      (e) => window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  const response = await page.goto(BASE + "/");
  const csp = response.headers()["content-security-policy"] || "";
  assert.match(csp, /script-src 'self'/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.doesNotMatch(csp, /unsafe-inline/);
  assert.equal(response.headers()["x-content-type-options"], "nosniff");
  const m = await schedule({ url: NOWHERE, delay: "1h", payload: "csp" });
  await page.goto(BASE + "/#token=" + encodeURIComponent(TOKEN));
  await listOrDetailLoaded(page);
  await rowOf(page, m.id).locator("a.id").click();
  await page.locator("#detail-view").waitFor();
  await eventually(async () => assert.match(await page.locator("#detail-view").innerText(), /csp/));
  await page.goBack();
  await listOrDetailLoaded(page);
  assert.deepEqual(await page.evaluate(() => window.__violations), []);
  // The policy is in force: an inline handler injected into the page never runs.
  const ran = await page.evaluate(async () => {
    window.__inline = 0;
    document.body.insertAdjacentHTML("beforeend", '<img src="/nothing" onerror="window.__inline=1">');
    await new Promise((r) => setTimeout(r, 300));
    return window.__inline;
  });
  assert.equal(ran, 0);
});

test("untrusted URLs, keys and payloads are shown as text and run nothing", async ({ page }) => {
  // URLs may not hold spaces, so their tags use "/" instead.
  const url = `${NOWHERE}?q="><script>window.__xss=1</script><img/src=x/onerror=window.__xss=2>`;
  const key = `"><img src=x onerror=window.__xss=3>`;
  const callback = `${NOWHERE}/cb?"><svg/onload=window.__xss=4>`;
  const payload = "<img src=x onerror=window.__xss=5>";
  const m = await schedule({ url, idempotency_key: key, callback, payload, delay: "40m" });
  const requests = [];
  page.on("request", (r) => requests.push(r.url()));

  await openPage(page);
  // The same through the form: a payload and URL the page sends and shows back.
  await page.getByLabel("Target URLs").fill(url + "&form=1");
  await page.getByLabel("Payload").fill(payload);
  await page.getByLabel("Delay", { exact: true }).fill("41m");
  await page.getByRole("button", { name: "Schedule", exact: true }).click();
  await page.locator("#schedule-result a.id").waitFor();
  const fromForm = await messageStatus(await page.locator("#schedule-result a.id").innerText());
  assert.equal(fromForm.payload_bytes, payload.length);

  await eventually(async () => assert.equal(await rowOf(page, fromForm.id).count(), 1));
  assert.equal(await page.getByText(url, { exact: true }).isVisible(), true);
  assert.equal(await page.getByText(url + "&form=1", { exact: true }).isVisible(), true);

  await rowOf(page, m.id).locator("a.id").click();
  await eventually(async () => assert.equal(await page.locator("#detail-id").innerText(), m.id));
  await page.locator("#detail-fields").getByText(key, { exact: true }).waitFor();
  assert.equal(await page.locator("#detail-fields").getByText(url, { exact: true }).isVisible(), true);
  assert.equal(await page.locator("#detail-fields").getByText(callback, { exact: true }).isVisible(), true);

  await sleep(300);
  assert.equal(await page.evaluate(() => typeof window.__xss), "undefined");
  assert.equal(await page.evaluate(() => document.querySelectorAll("script").length), 1);
  assert.equal(await page.evaluate(() => document.querySelectorAll("main img, main svg").length), 0);
  assert.deepEqual(requests.filter((u) => /\/x$/.test(u)), [], "no injected image was loaded");
});

test("the detail view shows every field and the attempt history", async ({ page }) => {
  const sink = await startSink();
  try {
    const pool = await schedule({
      url: [`${sink.url}/fail`, `${sink.url}/ok`], delay: "0s", payload: "hi", max_attempts: 2,
      idempotency_key: unique("detail"),
    });
    const refused = await schedule({ url: `${NOWHERE}/refused`, delay: "0s", max_attempts: 1 });
    await dispatchOnce();
    const delivered = await messageStatus(pool.id);
    const failed = await messageStatus(refused.id);
    assert.equal(delivered.state, "delivered", JSON.stringify(delivered));
    assert.equal(failed.state, "failed", JSON.stringify(failed));

    await openPage(page, "?" + new URLSearchParams({ id: pool.id }));
    await eventually(async () => assert.equal(await page.locator("#history tbody tr").count(), delivered.history.length));
    const field = (label) => page.locator("#detail-fields .field-row")
      .filter({ has: page.locator("dt", { hasText: new RegExp("^" + label + "$") }) }).locator("dd");
    assert.equal(await field("State").innerText(), "delivered");
    assert.equal(await field("Delivered to").innerText(), `${sink.url}/ok`);
    assert.equal(await field("Rounds").innerText(), "1 of at most 2");
    assert.equal(await field("Payload size").innerText(), "2 bytes");
    assert.equal(await field("Payload").innerText(), "hi");
    assert.equal(await field("Idempotency key").innerText(), delivered.idempotency_key);
    assert.equal(await field("Content type").innerText(), delivered.content_type);
    assert.equal(await field("Callback").innerText(), "—");
    assert.ok((await field("Delivered at").innerText()).includes(localClock(delivered.delivered_at)));
    assert.deepEqual(await field("Targets").locator("li").allInnerTexts(), delivered.urls);
    assert.equal(await page.locator("#detail-actions").isVisible(), false, "no cancel once delivered");

    const rows = page.locator("#history tbody tr");
    for (const [i, h] of delivered.history.entries()) {
      const row = rows.nth(i);
      assert.equal(await row.locator("td[data-label=URL]").innerText(), h.url);
      assert.equal(await row.locator("td[data-label=Status]").innerText(), String(h.status));
      assert.equal(await row.locator("td[data-label=ms]").innerText(), String(h.ms));
      assert.equal(await row.locator("time").getAttribute("datetime"), h.at);
    }
    assert.equal(await rows.last().locator("td[data-label=Status]").innerText(), "200");
    await screenshot(page, "detail");

    // From the list of failed messages to the one that was refused.
    await openPage(page, "?state=all");
    await screenshot(page, "list");
    await page.locator("#tabs a[data-state=failed]").click();
    await eventually(async () => assert.equal(await rowOf(page, refused.id).count(), 1));
    await rowOf(page, refused.id).locator("a.id").click();
    await eventually(async () => assert.equal(await page.locator("#history tbody tr").count(), 1));
    assert.equal(await page.locator("#history td[data-label=Error]").innerText(), failed.history[0].error);
    assert.equal(await page.locator("#history td[data-label=Status]").innerText(), "—");
    await page.locator("#back-link").click();
    await page.locator("#list-view").waitFor();
    assert.equal(await page.locator("#detail-view").isVisible(), false);
  } finally {
    sink.close();
  }
});

test("a failed message is retried with its Retry button, from the list and from its detail", async ({ page }) => {
  const fromList = await schedule({ url: `${NOWHERE}/retry-list`, delay: "0s", max_attempts: 1 });
  const fromDetail = await schedule({ url: `${NOWHERE}/retry-detail`, delay: "0s", max_attempts: 1 });
  const pending = await schedule({ delay: "30m" });
  await dispatchOnce();
  assert.equal((await messageStatus(fromList.id)).state, "failed");
  assert.equal((await messageStatus(fromDetail.id)).state, "failed");

  await openPage(page, "?state=failed");
  await eventually(async () => assert.ok((await shownIds(page)).includes(fromList.id)));
  const row = rowOf(page, fromList.id);
  assert.equal(await row.getByRole("button", { name: "Cancel message " + fromList.id }).count(), 0);
  await screenshot(page, "retry-failed-list");
  await row.getByRole("button", { name: "Retry message " + fromList.id }).click();
  await eventually(async () => assert.equal((await messageStatus(fromList.id)).state, "pending"));
  // A retried message leaves the failed tab.
  await eventually(async () => assert.equal(await rowOf(page, fromList.id).count(), 0));
  assert.equal(await page.locator("#list-error").isVisible(), false);
  assert.equal((await messageStatus(fromList.id)).attempts, 0, "its rounds start again");

  // A pending message has no retry, only a cancel.
  await openPage(page);
  await eventually(async () => assert.ok((await shownIds(page)).includes(pending.id)));
  assert.equal(await rowOf(page, pending.id).getByRole("button", { name: "Retry message " + pending.id }).count(), 0);

  await openPage(page, "?" + new URLSearchParams({ id: fromDetail.id }));
  await page.locator("#detail-retry").waitFor();
  assert.equal(await page.locator("#detail-cancel").isVisible(), false, "no cancel for a failed message");
  await page.locator("#detail-retry").click();
  await eventually(async () => assert.equal((await messageStatus(fromDetail.id)).state, "pending"));
  // The retried message can be cancelled from its detail.
  await eventually(async () => assert.equal(await page.locator("#detail-cancel").isVisible(), true));
  assert.equal(await page.locator("#detail-retry").isVisible(), false);
  assert.equal(await page.locator("#detail-error").isVisible(), false);
});

test("the page fits a 375 px wide screen", async ({ page }) => {
  const long = `${NOWHERE}/${"a-very-long-path-segment-".repeat(6)}?and=a&long=query&string=too`;
  const m = await schedule({ url: [long, NOWHERE], delay: "3m", idempotency_key: "k".repeat(120) });
  await openPage(page, "?state=all");
  const overflow = () => page.evaluate(() =>
    document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.equal(await overflow(), 0, "no sideways scrolling on the list");
  assert.equal(await page.getByText(long, { exact: true }).isVisible(), true);
  const box = await page.getByRole("button", { name: "Schedule", exact: true }).boundingBox();
  assert.ok(box.x >= 0 && box.x + box.width <= PHONE.width, JSON.stringify(box));
  // Each row is a card whose cells say what they hold.
  const label = await rowOf(page, m.id).locator("td[data-label=Destination]").evaluate(
    (td) => getComputedStyle(td, "::before").content);
  assert.equal(label, '"Destination"');
  await screenshot(page, "list-375");

  await openPage(page, "?" + new URLSearchParams({ id: m.id }));
  await page.locator("#detail-fields dt").first().waitFor();
  assert.equal(await overflow(), 0, "no sideways scrolling on a message");
  await screenshot(page, "detail-375");
}, { viewport: PHONE });

test("an unreachable API is said so, not shown as an empty list", async ({ page }) => {
  await page.route("**/api/**", (route) => route.abort("connectionrefused"));
  await page.goto(BASE + "/#token=" + encodeURIComponent(TOKEN));
  const error = page.locator("#list-error");
  await error.waitFor();
  assert.match(await error.innerText(), /API is unreachable/);
  assert.equal(await page.locator("#empty").isVisible(), false);
});

test("the list refreshes itself while the tab is visible", async ({ page }) => {
  await openPage(page);
  const countBefore = await page.locator("#tabs a[data-state=pending] .count").innerText();
  const m = await schedule({ delay: "2m" });
  // The page refreshes every 5 s; no reload, no click.
  await eventually(async () => assert.equal(await rowOf(page, m.id).count(), 1), 8000);
  assert.equal(await page.locator("#tabs a[data-state=pending] .count").innerText(),
    String(Number(countBefore) + 1));
});

test("a banner says so when health reports overdue messages", async ({ page }) => {
  // Due at once, and no dispatcher runs: it is overdue within seconds.
  await schedule({ delay: "0s" });
  await eventually(async () =>
    assert.ok((await health()).oldest_overdue_s >= OVERDUE_ALARM_S), 20000);
  await openPage(page);
  const banner = page.locator("#banner");
  await banner.waitFor();
  assert.match(await banner.innerText(), /overdue.*late.*dispatcher/);
  await screenshot(page, "banner");
});

test("the banner names a FastCGI program that does not answer", async ({ page }) => {
  // Stopped (not killed, which the stack would repair at once), the cancel
  // workers leave health answering 503 with down: ["cancel"].
  const pidFile = path.join(path.dirname(CONF), "run", "cancel.pid");
  const pids = readFileSync(pidFile, "utf8").split(/\s+/).filter(Boolean).map(Number);
  assert.ok(pids.length > 0, "no cancel workers in " + pidFile);
  try {
    for (const pid of pids) process.kill(pid, "SIGSTOP");
    await openPage(page);
    const banner = page.locator("#banner");
    await banner.waitFor();
    assert.match(await banner.innerText(), /not fully running: cancel does not answer/);
    await screenshot(page, "banner-down");
  } finally {
    for (const pid of pids) process.kill(pid, "SIGCONT");
  }
  await eventually(async () => assert.equal((await health()).ok, true), 8000);
});

// ---- topics (API v2): the Topics view, publishing from the form, copies in the list and the detail ----

// Topic and subscription names may hold only [A-Za-z0-9_.-].
function uniqueName(word) {
  return unique(word).replace(/[^A-Za-z0-9_.-]/g, "-");
}

async function subscribe(fields) {
  const r = await apiRequest("POST", "/api/subscribe", fields);
  assert.ok(r.status === 201 || r.status === 200, r.text);
  return r.json;
}

async function topicInfo(name) {
  const r = await apiRequest("GET", "/api/topics?" + new URLSearchParams({ name }));
  return r;
}

function topicSection(page, name) {
  return page.locator(`#topics-list section[data-topic="${name}"]`);
}

function subscriptionRow(page, topic, name) {
  return topicSection(page, topic).locator(`tbody tr[data-subscription="${name}"]`);
}

async function openTopics(page, topic) {
  const query = new URLSearchParams({ view: "topics" });
  if (topic) query.set("topic", topic);
  await openPage(page, "?" + query);
}

test("the Topics view lists each topic with its subscriptions and their options", async ({ page }) => {
  const topic = uniqueName("orders");
  const queue = uniqueName("invoices");
  const urls = [`${NOWHERE}/${topic}/billing-1`, `${NOWHERE}/${topic}/billing-2`];
  await subscribe({ topic, name: "billing", url: urls, callback: `${NOWHERE}/${topic}/cb`,
    max_attempts: 3, timeout: 7 });
  await subscribe({ topic, name: "invoices", queue });
  const api = (await topicInfo(topic)).json;
  assert.deepEqual(api.subscriptions.map((s) => s.name), ["billing", "invoices"], JSON.stringify(api));

  // From the message list, through the link in the header.
  await openPage(page);
  await page.locator("#nav-topics").click();
  await page.locator("#topics-view").waitFor();
  assert.match(page.url(), /\?view=topics$/);
  assert.equal(await page.locator("#list-view").isVisible(), false);
  assert.equal(await page.locator("#nav-topics").getAttribute("aria-current"), "page");
  const section = topicSection(page, topic);
  await section.waitFor();
  assert.equal(await section.locator("h3 .topic-name").innerText(), topic);
  assert.deepEqual(await section.locator("tbody tr").evaluateAll((rows) =>
    rows.map((r) => r.dataset.subscription)), ["billing", "invoices"]);

  const billing = subscriptionRow(page, topic, "billing");
  const cell = (row, label) => row.locator(`td[data-label="${label}"]`);
  assert.equal(await cell(billing, "Subscription").innerText(), "billing");
  assert.deepEqual(await cell(billing, "Destination").locator(".url").allInnerTexts(), urls);
  assert.equal(await cell(billing, "Callback").innerText(), `${NOWHERE}/${topic}/cb`);
  assert.equal(await cell(billing, "Max attempts").innerText(), "3");
  assert.equal(await cell(billing, "Timeout").innerText(), "7 s");
  assert.equal(await billing.getByRole("button", { name: `Remove subscription billing of ${topic}` }).count(), 1);

  const invoices = subscriptionRow(page, topic, "invoices");
  assert.equal(await cell(invoices, "Destination").innerText(), "queue " + queue);
  assert.equal(await cell(invoices, "Callback").innerText(), "—");
  assert.equal(await cell(invoices, "Max attempts").innerText(), "the queue's");
  assert.equal(await cell(invoices, "Timeout").innerText(), "—");
  // A queue subscription's queue leads to the queue.
  await cell(invoices, "Destination").locator("a.queue-name").click();
  await page.locator("#queue-detail").waitFor();
  assert.equal(await page.locator("#queue-name").innerText(), queue);

  // Every topic of the API is there, in its order.
  await openTopics(page);
  const all = (await apiRequest("GET", "/api/topics")).json.topics.map((t) => t.name);
  await eventually(async () => assert.deepEqual(
    await page.locator("#topics-list section[data-topic]").evaluateAll((s) => s.map((x) => x.dataset.topic)), all));
  await screenshot(page, "topics");
});

test("the subscribe form adds and replaces a subscription, with the API's errors at their fields", async ({ page }) => {
  const topic = uniqueName("form");
  const queue = uniqueName("formq");
  await openTopics(page);
  const form = page.locator("#subscribe-form");
  await form.getByLabel("Topic", { exact: true }).fill(topic);
  await form.getByLabel("Subscription name").fill("hooks");
  await form.getByLabel("Subscriber URLs").fill(`${NOWHERE}/${topic}/1\n\n  ${NOWHERE}/${topic}/2 \n`);
  await form.getByLabel("Callback of each copy").fill(`${NOWHERE}/${topic}/cb`);
  await form.getByLabel("Rounds per copy").fill("4");
  await form.getByLabel("Timeout per attempt (s)").fill("9");
  await form.getByRole("button", { name: "Subscribe" }).click();
  const result = page.locator("#subscribe-result");
  await result.locator("text=Subscribed").waitFor();
  assert.match(await result.innerText(), new RegExp(`Subscribed hooks to ${topic}`));
  let api = (await topicInfo(topic)).json;
  assert.equal(api.subscriptions.length, 1);
  const made = api.subscriptions[0];
  assert.deepEqual(made.urls, [`${NOWHERE}/${topic}/1`, `${NOWHERE}/${topic}/2`]);
  assert.equal(made.callback, `${NOWHERE}/${topic}/cb`);
  assert.equal(made.max_attempts, 4);
  assert.equal(made.timeout, 9);
  // The view shows it without a reload; the topic stays for the next one.
  await subscriptionRow(page, topic, "hooks").waitFor();
  assert.equal(await form.getByLabel("Topic", { exact: true }).inputValue(), topic);
  assert.equal(await form.getByLabel("Subscription name").inputValue(), "");

  // The same name again replaces it: now a queue.
  await form.getByLabel("Subscription name").fill("hooks");
  await form.getByLabel("Subscriber queue").fill(queue);
  await form.getByRole("button", { name: "Subscribe" }).click();
  await result.locator("text=Replaced").waitFor();
  api = (await topicInfo(topic)).json;
  assert.equal(api.subscriptions.length, 1);
  assert.equal(api.subscriptions[0].queue, queue);
  assert.equal(api.subscriptions[0].urls, null);
  await eventually(async () => assert.equal(await subscriptionRow(page, topic, "hooks")
    .locator("td[data-label=Destination]").innerText(), "queue " + queue));

  // Errors appear at the field the API names, and nothing is made.
  const expectError = async (fields, fill) => {
    const expected = (await apiRequest("POST", "/api/subscribe", fields)).json;
    assert.ok(expected && expected.field, JSON.stringify(expected));
    await fill();
    await form.getByRole("button", { name: "Subscribe" }).click();
    const box = page.locator(`#s-${expected.field}-error`);
    await box.waitFor();
    assert.equal(await box.innerText(), expected.error);
    assert.equal(await page.locator(`#s-${expected.field}`).getAttribute("aria-invalid"), "true");
    assert.equal(await result.innerText(), "");
    return expected.field;
  };
  assert.equal(await expectError({ topic, name: "not ok", url: NOWHERE }, async () => {
    await form.getByLabel("Subscription name").fill("not ok");
    await form.getByLabel("Subscriber URLs").fill(NOWHERE);
  }), "name");
  assert.equal(await expectError({ topic, name: "both", url: NOWHERE, queue }, async () => {
    await form.getByLabel("Subscription name").fill("both");
    await form.getByLabel("Subscriber URLs").fill(NOWHERE);
    await form.getByLabel("Subscriber queue").fill(queue);
  }), "queue");
  assert.equal(await expectError({ topic, name: "rounds", url: NOWHERE, max_attempts: 101 }, async () => {
    await form.getByLabel("Subscription name").fill("rounds");
    await form.getByLabel("Subscriber queue").fill("");
    await form.getByLabel("Rounds per copy").fill("101");
  }), "max_attempts");
  // A previous field's error is gone once another is named.
  assert.equal(await page.locator("#s-name-error").isVisible(), false);
  assert.equal(await page.locator("#s-queue-error").isVisible(), false);
  assert.deepEqual((await topicInfo(topic)).json.subscriptions.map((s) => s.name), ["hooks"]);
  await screenshot(page, "topics-form-error");
});

test("the subscribe form sends a method and headers; the Topics view lists the method and header names only", async ({ page }) => {
  const topic = uniqueName("headers");
  const secret = unique("Bearer sub-s3cret");
  const trace = unique("trace-value");
  await openTopics(page);
  const form = page.locator("#subscribe-form");
  await form.getByLabel("Topic", { exact: true }).fill(topic);
  await form.getByLabel("Subscription name").fill("signed");
  await form.getByLabel("Subscriber URLs").fill(`${NOWHERE}/${topic}/signed`);

  // A refused header name is the API's 400 naming header, at the Headers field.
  const expected = (await apiRequest("POST", "/api/subscribe",
    { topic, name: "signed", url: `${NOWHERE}/${topic}/signed`, header: `Host: ${secret}` })).json;
  assert.equal(expected && expected.field, "header", JSON.stringify(expected));
  await form.getByLabel("Headers of each copy").fill(`Host: ${secret}`);
  await form.getByRole("button", { name: "Subscribe" }).click();
  const headerError = page.locator("#s-header-error");
  await headerError.waitFor();
  assert.equal(await headerError.innerText(), expected.error);
  assert.equal(await form.getByLabel("Headers of each copy").getAttribute("aria-invalid"), "true");
  assert.equal(await page.locator("#subscribe-result").innerText(), "");
  assert.equal((await topicInfo(topic)).status, 404, "a refused subscription makes no topic");

  // A queue takes no method: the API's 400 naming method, at the Method field.
  const queue = uniqueName("subq");
  const refused = (await apiRequest("POST", "/api/subscribe",
    { topic, name: "signed", queue, method: "PUT" })).json;
  assert.equal(refused && refused.field, "method", JSON.stringify(refused));
  await form.getByLabel("Subscriber URLs").fill("");
  await form.getByLabel("Subscriber queue").fill(queue);
  await form.getByLabel("Headers of each copy").fill("");
  await form.getByLabel("Method of each copy").selectOption("PUT");
  await form.getByRole("button", { name: "Subscribe" }).click();
  await page.locator("#s-method-error").waitFor();
  assert.equal(await page.locator("#s-method-error").innerText(), refused.error);
  assert.equal(await form.getByLabel("Method of each copy").getAttribute("aria-invalid"), "true");
  assert.equal(await headerError.isVisible(), false, "the earlier error is gone");
  assert.equal((await topicInfo(topic)).status, 404, "a refused subscription makes no topic");
  await form.getByLabel("Subscriber queue").fill("");
  await form.getByLabel("Subscriber URLs").fill(`${NOWHERE}/${topic}/signed`);

  await form.getByLabel("Headers of each copy").fill(`Authorization: ${secret}\n\n  X-Trace: ${trace}  \n`);
  await form.getByRole("button", { name: "Subscribe" }).click();
  await page.locator("#subscribe-result").locator("text=Subscribed").waitFor();
  assert.equal(await page.locator("#s-method-error").isVisible(), false, "the earlier error is gone");
  const made = (await topicInfo(topic)).json.subscriptions[0];
  assert.equal(made.method, "PUT");
  assert.deepEqual(made.headers, ["Authorization", "X-Trace"]);
  assert.equal(await form.getByLabel("Headers of each copy").inputValue(), "", "the form is cleared");
  assert.equal(await form.getByLabel("Method of each copy").inputValue(), "POST", "the form is cleared");

  const row = subscriptionRow(page, topic, "signed");
  await row.waitFor();
  assert.equal(await row.locator('td[data-label="Method"]').innerText(), "PUT");
  assert.equal(await row.locator('td[data-label="Headers"]').innerText(), "Authorization, X-Trace");
  // A queue's subscription has no method: none is shown.
  await subscribe({ topic, name: "pulled", queue, header: "X-Kind: pulled-value" });
  await openTopics(page, topic);
  const pulled = subscriptionRow(page, topic, "pulled");
  await pulled.waitFor();
  assert.equal(await pulled.locator('td[data-label="Method"]').innerText(), "—");
  assert.equal(await pulled.locator('td[data-label="Headers"]').innerText(), "X-Kind");
  const content = await page.content();
  for (const value of [secret, trace, "pulled-value"]) {
    assert.ok(!content.includes(value), "the page shows a header value: " + value);
  }
  await screenshot(page, "topics-headers");
});

test("removing a subscription asks first; Keep it keeps it, Remove removes it", async ({ page }) => {
  const topic = uniqueName("remove");
  await subscribe({ topic, name: "stays", url: `${NOWHERE}/stays` });
  await subscribe({ topic, name: "goes", url: `${NOWHERE}/goes` });
  await openTopics(page, topic);
  const goes = subscriptionRow(page, topic, "goes");
  await goes.waitFor();
  const button = goes.getByRole("button", { name: `Remove subscription goes of ${topic}` });
  await button.click();
  const dialog = page.locator("#unsubscribe-dialog");
  await dialog.waitFor();
  assert.equal(await dialog.locator("#unsubscribe-what").innerText(), `goes of ${topic}`);
  assert.equal(await page.evaluate(() => document.activeElement.textContent), "Keep it",
    "the safe choice has the focus");
  await dialog.getByRole("button", { name: "Keep it" }).click();
  await dialog.waitFor({ state: "hidden" });
  await sleep(300);
  assert.deepEqual((await topicInfo(topic)).json.subscriptions.map((s) => s.name), ["goes", "stays"]);

  await button.click();
  await dialog.waitFor();
  await dialog.getByRole("button", { name: "Remove subscription" }).click();
  await eventually(async () => assert.deepEqual(
    (await topicInfo(topic)).json.subscriptions.map((s) => s.name), ["stays"]));
  await eventually(async () => assert.equal(await goes.count(), 0));
  assert.equal(await page.evaluate(() => document.activeElement.id), "topics-title",
    "the focus is not lost with the row");
  assert.equal(await subscriptionRow(page, topic, "stays").count(), 1);
  assert.equal(await page.locator("#topics-error").isVisible(), false);

  // One removed meanwhile elsewhere: the API's 404 is said, as text.
  const stays = subscriptionRow(page, topic, "stays");
  assert.equal((await apiRequest("POST", "/api/unsubscribe", { topic, name: "stays" })).status, 200);
  await stays.getByRole("button").click();
  await dialog.getByRole("button", { name: "Remove subscription" }).click();
  const expected = (await apiRequest("POST", "/api/unsubscribe", { topic, name: "stays" })).json;
  await page.locator("#topics-error").waitFor();
  assert.equal(await page.locator("#topics-error").innerText(), `stays of ${topic}: ${expected.error}`);
  // The topic is left with none: a publish to it would be refused, said so.
  await eventually(async () => assert.match(await topicSection(page, topic).innerText(),
    /No subscriptions/));
});

test("the schedule form publishes to a topic and links each delivery to its message", async ({ page }) => {
  const topic = uniqueName("publish");
  const queue = uniqueName("pubq");
  await subscribe({ topic, name: "web", url: `${NOWHERE}/${topic}/web` });
  await subscribe({ topic, name: "work", queue });
  // "Publish…" in the Topics view fills the schedule form's topic.
  await openTopics(page);
  await topicSection(page, topic).getByRole("button", { name: "Publish to " + topic }).click();
  assert.equal(await page.getByLabel("Topic (instead of URLs or a queue)").inputValue(), topic);
  assert.equal(await page.evaluate(() => document.activeElement.id), "f-topic");
  await openPage(page);
  await page.getByLabel("Topic (instead of URLs or a queue)").fill(topic);
  await page.getByLabel("After a delay").check();
  await page.getByLabel("Delay", { exact: true }).fill("20m");
  await page.getByLabel("Payload").fill("one for everyone");
  await page.getByRole("button", { name: "Schedule", exact: true }).click();

  const result = page.locator("#schedule-result");
  await result.locator("li").first().waitFor();
  assert.match(await result.innerText(), new RegExp(`Published to ${topic}: 2 messages, due `));
  const items = result.locator("li");
  assert.equal(await items.count(), 2);
  const shown = [];
  for (let i = 0; i < 2; i++) {
    shown.push([await items.nth(i).locator(".subscription").innerText(),
      await items.nth(i).locator("a.id").innerText()]);
  }
  assert.deepEqual(shown.map(([s]) => s), ["web", "work"]);
  for (const [subscription, id] of shown) {
    const m = await messageStatus(id);
    assert.equal(m.topic, topic);
    assert.equal(m.subscription, subscription);
    assert.equal(m.payload, "one for everyone");
    assert.equal(m.state, "pending");
  }
  assert.equal((await messageStatus(shown[1][1])).queue, queue);
  await screenshot(page, "form-publish");

  // Each is a link to the message.
  await items.nth(1).locator("a.id").click();
  await page.locator("#detail-view").waitFor();
  await eventually(async () => assert.equal(await page.locator("#detail-id").innerText(), shown[1][1]));
  await eventually(async () => assert.equal(await detailField(page, "Subscription").innerText(), "work"));

  // A topic with no subscriptions: the API's 404 at the topic field, nothing made.
  const empty = uniqueName("nobody");
  const pendingBefore = (await listPage({ state: "all", limit: "1" })).counts.pending;
  const expected = (await apiRequest("POST", "/api/schedule", { topic: empty })).json;
  assert.equal(expected.field, "topic");
  await page.getByLabel("Topic (instead of URLs or a queue)").fill(empty);
  await page.getByRole("button", { name: "Schedule", exact: true }).click();
  await page.locator("#f-topic-error").waitFor();
  assert.equal(await page.locator("#f-topic-error").innerText(), expected.error);
  // A callback is each subscription's: given beside a topic, the API says so there.
  await page.getByLabel("Topic (instead of URLs or a queue)").fill(topic);
  await page.getByLabel(/Callback URL/).fill(`${NOWHERE}/cb`);
  await page.getByRole("button", { name: "Schedule", exact: true }).click();
  await page.locator("#f-callback-error").waitFor();
  assert.match(await page.locator("#f-callback-error").innerText(), /subscription/);
  assert.equal(await page.locator("#f-topic-error").isVisible(), false);
  assert.equal((await listPage({ state: "all", limit: "1" })).counts.pending, pendingBefore,
    "nothing was scheduled");
});

test("a topic's copies show their topic and subscription in the list and the detail", async ({ page }) => {
  const topic = uniqueName("copies");
  await subscribe({ topic, name: "alpha", url: `${NOWHERE}/${topic}/alpha` });
  const published = await apiRequest("POST", "/api/schedule", { topic, delay: "35m" });
  assert.equal(published.status, 201, published.text);
  const [copy] = published.json.deliveries;
  assert.equal(copy.subscription, "alpha");

  await openPage(page);
  const row = rowOf(page, copy.id);
  await eventually(async () => assert.equal(await row.count(), 1));
  const destination = row.locator("td[data-label=Destination]");
  assert.match(await destination.innerText(), new RegExp(`${NOWHERE}/${topic}/alpha`));
  assert.equal(await destination.locator(".copy-of").innerText(), `topic ${topic} · alpha`);
  // An ordinary message says nothing of topics.
  const plain = await schedule({ delay: "36m" });
  await eventually(async () => assert.equal(await rowOf(page, plain.id).count(), 1));
  assert.equal(await rowOf(page, plain.id).locator(".copy-of").count(), 0);

  await row.locator("a.id").click();
  await page.locator("#detail-view").waitFor();
  await eventually(async () => assert.equal(await detailField(page, "Topic").innerText(), topic));
  assert.equal(await detailField(page, "Subscription").innerText(), "alpha");
  assert.equal(await page.locator("#detail-fields dt", { hasText: /^(topic|subscription)$/ }).count(), 0,
    "not shown a second time under the API's own key");
  await openPage(page, "?" + new URLSearchParams({ id: plain.id }));
  await detailField(page, "State").waitFor();
  assert.equal(await detailField(page, "Topic").count(), 0, "an ordinary message has no topic");

  // The topic leads to the Topics view, that topic marked.
  await openPage(page, "?" + new URLSearchParams({ id: copy.id }));
  await detailField(page, "Topic").locator("a").click();
  await page.locator("#topics-view").waitFor();
  assert.equal(new URL(page.url()).searchParams.get("topic"), topic);
  await eventually(async () => assert.equal(await topicSection(page, topic).getAttribute("aria-current"), "true"));
  assert.equal(await page.locator("#s-topic").inputValue(), topic, "the form adds to the chosen topic");
});

test("subscription URLs, callbacks and topic names are shown as text, never markup", async ({ page }) => {
  const topic = uniqueName("hostile");
  const url = `${NOWHERE}?q="><b>bold</b><script>window.__xss=1</script><img/src=x/onerror=window.__xss=2>`;
  const callback = `${NOWHERE}/cb?'"><svg/onload=window.__xss=3>`;
  await subscribe({ topic, name: "evil", url, callback });
  const requests = [];
  page.on("request", (r) => requests.push(r.url()));
  await openTopics(page, topic);
  const row = subscriptionRow(page, topic, "evil");
  await row.waitFor();
  assert.equal(await row.locator("td[data-label=Destination]").innerText(), url);
  assert.equal(await row.locator("td[data-label=Callback]").innerText(), callback);
  assert.equal(await page.getByText(url, { exact: true }).isVisible(), true);

  // Through the form too: the page sends and shows back the same text.
  const form = page.locator("#subscribe-form");
  await form.getByLabel("Topic", { exact: true }).fill(topic);
  await form.getByLabel("Subscription name").fill("evil2");
  await form.getByLabel("Subscriber URLs").fill(url + "&form=1");
  await form.getByRole("button", { name: "Subscribe" }).click();
  await subscriptionRow(page, topic, "evil2").waitFor();
  assert.deepEqual((await topicInfo(topic)).json.subscriptions.find((s) => s.name === "evil2").urls,
    [url + "&form=1"]);
  assert.equal(await subscriptionRow(page, topic, "evil2").locator("td[data-label=Destination]").innerText(),
    url + "&form=1");

  // The dialog names the subscription as text.
  await row.getByRole("button").click();
  await page.locator("#unsubscribe-dialog").waitFor();
  await page.locator("#unsubscribe-dialog").getByRole("button", { name: "Keep it" }).click();

  // A topic name in the address that no topic can have: said so, as text, never sent.
  const hostileName = `<b>x</b><img src=x onerror="window.__xss=4">`;
  const sent = [];
  page.on("request", (r) => sent.push(r.url()));
  await openTopics(page, hostileName);
  await page.locator("#topics-error", { hasText: "Not a topic name" }).waitFor();
  assert.equal((await page.locator("#topics-error").innerText()).includes(hostileName), true);
  assert.deepEqual(sent.filter((u) => new URL(u).pathname.startsWith("/api/") && u.includes("onerror")), [],
    "the name was sent to the API");

  await sleep(300);
  assert.equal(await page.evaluate(() => typeof window.__xss), "undefined");
  assert.equal(await page.evaluate(() => document.querySelectorAll("script").length), 1);
  assert.equal(await page.evaluate(() => document.querySelectorAll("main img, main svg, main b").length), 0);
  assert.deepEqual(requests.filter((u) => /\/x$/.test(u)), [], "no injected image was loaded");
});

test("the Topics view asks for the token on a 401 and shows nothing without it", async ({ page }) => {
  const topic = uniqueName("secret");
  await subscribe({ topic, name: "hidden", url: `${NOWHERE}/hidden` });
  await openPage(page, "?view=topics", { withToken: false });
  await page.locator("#token-panel").waitFor();
  await page.locator("#topics-empty", { hasText: "Enter the API token" }).waitFor();
  assert.equal(await page.locator("#topics-list section").count(), 0);
  assert.equal(await page.locator("#topics-error").isVisible(), false);

  await page.getByLabel("Token", { exact: true }).fill(TOKEN);
  await page.getByRole("button", { name: "Use token" }).click();
  await subscriptionRow(page, topic, "hidden").waitFor();
  // Forgetting the token takes the topics off the screen.
  await page.getByRole("button", { name: "Forget token" }).click();
  await page.locator("#token-panel").waitFor();
  assert.equal(await page.locator("#topics-list section").count(), 0);
});

test("the Topics view fits a 375 px wide screen", async ({ page }) => {
  const topic = uniqueName("narrow") + "-" + "long-topic-name".repeat(2);
  await subscribe({ topic, name: "a-long-subscription-name-too",
    url: `${NOWHERE}/${"a-very-long-path-segment-".repeat(5)}`, callback: `${NOWHERE}/cb`, max_attempts: 2 });
  await openTopics(page, topic);
  await subscriptionRow(page, topic, "a-long-subscription-name-too").waitFor();
  const overflow = await page.evaluate(() =>
    document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.equal(overflow, 0, "no sideways scrolling on the Topics view");
  const label = await subscriptionRow(page, topic, "a-long-subscription-name-too")
    .locator("td[data-label=Callback]").evaluate((td) => getComputedStyle(td, "::before").content);
  assert.equal(label, '"Callback"');
  await screenshot(page, "topics-375");
}, { viewport: PHONE });

// ---- queues (API v2): the Queues view, queue messages in the list and the detail ----

async function scheduleInto(queue, fields = {}) {
  const r = await apiRequest("POST", "/api/schedule", { queue, delay: "1h", ...fields });
  assert.equal(r.status, 201, r.text);
  return r.json;
}

async function queueInfo(name) {
  const r = await apiRequest("GET", "/api/queues?" + new URLSearchParams({ name }));
  assert.equal(r.status, 200, r.text);
  return r.json;
}

// Queue names may hold only [A-Za-z0-9_.-].
function uniqueQueue(word) {
  return unique(word).replace(/[^A-Za-z0-9_.-]/g, "-");
}

function queueRowOf(page, name) {
  return page.locator(`#queues tbody tr[data-queue="${name}"]`);
}

function queueMessageRowOf(page, id) {
  return page.locator("#queue-messages tbody tr").filter({ has: page.locator("a.id", { hasText: id }) });
}

async function shownQueueMessageIds(page) {
  return page.locator("#queue-messages tbody a.id").allTextContents();
}

function detailField(page, label) {
  return page.locator("#detail-fields .field-row")
    .filter({ has: page.locator("dt", { hasText: new RegExp("^" + label.replace(/[()]/g, "\\$&") + "$") }) })
    .locator("dd");
}

test("the Queues view lists a queue with its settings and figures", async ({ page }) => {
  const name = uniqueQueue("figures");
  await scheduleInto(name, { delay: "0s", payload: "a" });
  await scheduleInto(name, { delay: "0s", payload: "b" });
  await scheduleInto(name, { delay: "2h", payload: "later" });
  const gone = await scheduleInto(name, { delay: "3h" });
  assert.equal((await apiRequest("POST", "/api/cancel", { id: gone.id })).status, 200);
  const set = await apiRequest("POST", "/api/queues", { name, max_depth: 50, visibility: 45 });
  assert.equal(set.status, 200, set.text);
  const api = await queueInfo(name);
  assert.equal(api.pending, 3, JSON.stringify(api));
  assert.equal(api.ready, 2, JSON.stringify(api));

  // From the message list, through the link in the header.
  await openPage(page);
  await page.locator("#nav-queues").click();
  await page.locator("#queues-view").waitFor();
  assert.match(page.url(), /\?view=queues$/);
  assert.equal(await page.locator("#list-view").isVisible(), false);
  assert.equal(await page.locator("#nav-queues").getAttribute("aria-current"), "page");
  const row = queueRowOf(page, name);
  await row.waitFor();
  const cell = (label) => row.locator(`td[data-label="${label}"]`).innerText();
  assert.equal(await cell("Queue"), name);
  assert.equal(await cell("Ready"), "2");
  assert.equal(await cell("Pending"), "3");
  assert.equal(await cell("Delivering"), "0");
  assert.equal(await cell("Failed"), "0");
  assert.equal(await cell("Delivered"), "0");
  assert.match(await cell("Oldest ready"), /^\d+ s$/);
  assert.equal(await cell("Visibility"), "45 s");
  assert.equal(await cell("Max attempts"), String(api.max_attempts));
  assert.equal(await cell("Max depth"), "50");
  assert.equal(await cell("Paused"), "no");

  // Every queue of the API is there, in its order.
  const all = (await apiRequest("GET", "/api/queues")).json.queues.map((q) => q.name);
  await eventually(async () => assert.deepEqual(
    await page.locator("#queues tbody tr").evaluateAll((rows) => rows.map((r) => r.dataset.queue)), all));

  // Pausing shows at the next refresh, with no reload.
  assert.equal((await apiRequest("POST", "/api/queues", { name, paused: "true" })).status, 200);
  await eventually(async () => assert.equal(await cell("Paused"), "paused"), 8000);
  await screenshot(page, "queues");
});

test("choosing a queue lists its pending messages, and cancel there cancels", async ({ page }) => {
  const name = uniqueQueue("choose");
  const other = uniqueQueue("other");
  const second = await scheduleInto(name, { delay: "2h" });
  const first = await scheduleInto(name, { delay: "1h", priority: "-4" });
  const third = await scheduleInto(name, { delay: "3h" });
  const elsewhere = await scheduleInto(other, { delay: "1h" });
  await openPage(page, "?view=queues");
  await queueRowOf(page, name).locator("a.queue-name").click();
  await page.locator("#queue-detail").waitFor();
  assert.equal(await page.locator("#queue-name").innerText(), name);
  assert.equal(new URL(page.url()).searchParams.get("queue"), name);
  await eventually(async () =>
    assert.deepEqual(await shownQueueMessageIds(page), [first.id, second.id, third.id]));
  assert.ok(!(await shownQueueMessageIds(page)).includes(elsewhere.id), "another queue's message");
  const api = await listPage({ queue: name, state: "pending" });
  assert.deepEqual(await shownQueueMessageIds(page), api.messages.map((m) => m.id));
  const row = queueMessageRowOf(page, first.id);
  assert.equal(await row.locator("td[data-label=Priority]").innerText(), "-4");
  assert.equal(await row.locator("td[data-label=State]").innerText(), "pending");
  assert.equal(await row.locator("time").getAttribute("datetime"), first.due);
  assert.equal(await page.locator("#queue-tabs a[data-state=pending] .count").innerText(), "3");
  assert.equal(await page.locator("#queue-tabs a[data-state=pending]").getAttribute("aria-current"), "page");

  // Cancel, after confirming, from the queue's list.
  await row.getByRole("button", { name: "Cancel message " + first.id }).click();
  const dialog = page.locator("#cancel-dialog");
  await dialog.waitFor();
  await dialog.getByRole("button", { name: "Cancel message" }).click();
  await eventually(async () => assert.equal((await messageStatus(first.id)).state, "cancelled"));
  await eventually(async () => assert.deepEqual(await shownQueueMessageIds(page), [second.id, third.id]));
  await eventually(async () =>
    assert.equal(await queueRowOf(page, name).locator("td[data-label=Pending]").innerText(), "2"));
  assert.equal(await page.locator("#queue-error").isVisible(), false);
  await screenshot(page, "queue-pending");

  // The failed tab: nothing failed here.
  await page.locator("#queue-tabs a[data-state=failed]").click();
  await page.locator("#queue-messages-empty", { hasText: "No failed messages" }).waitFor();
  assert.equal(new URL(page.url()).searchParams.get("state"), "failed");
});

test("a queue's failed messages are listed in its failed tab", async ({ page }) => {
  const name = uniqueQueue("dead");
  const m = await scheduleInto(name, { delay: "0s", max_attempts: 1, payload: "poison" });
  // Received once and never acknowledged: its one attempt runs out.
  const got = await apiRequest("POST", "/api/receive", { queue: name, visibility: 1 });
  assert.equal(got.status, 200, got.text);
  assert.deepEqual(got.json.messages.map((x) => x.id), [m.id]);
  await sleep(1300);
  await eventually(async () => {
    // A receive meets the message whose last attempt ran out and ends it failed.
    const again = await apiRequest("POST", "/api/receive", { queue: name });
    assert.deepEqual(again.json.messages, [], again.text);
    assert.equal((await messageStatus(m.id)).state, "failed");
  });
  await openPage(page, "?" + new URLSearchParams({ view: "queues", queue: name, state: "failed" }));
  await eventually(async () => assert.deepEqual(await shownQueueMessageIds(page), [m.id]));
  const row = queueMessageRowOf(page, m.id);
  assert.equal(await row.locator("td[data-label=State]").innerText(), "failed");
  assert.equal(await row.locator("td[data-label=Attempts]").innerText(), "1 / 1");
  assert.deepEqual(await row.getByRole("button").evaluateAll((bs) => bs.map((b) => b.getAttribute("aria-label"))),
    ["Retry message " + m.id], "a failed message has no cancel, only a retry");
  assert.equal(await page.locator("#queue-tabs a[data-state=failed] .count").innerText(), "1");
  assert.equal(await queueRowOf(page, name).locator("td[data-label=Failed]").innerText(), "1");
});

test("queue messages appear in the message list with their queue and priority", async ({ page }) => {
  const name = uniqueQueue("inlist");
  const m = await scheduleInto(name, { delay: "50m", priority: "-7", ttl: "1h" });
  await openPage(page);
  const row = rowOf(page, m.id);
  await eventually(async () => assert.equal(await row.count(), 1));
  const destination = await row.locator("td[data-label=Destination]").innerText();
  assert.match(destination, new RegExp("queue " + name.replace(/\./g, "\\.")));
  assert.match(destination, /priority -7/);
  assert.match(await row.locator("td[data-label=Due]").innerText(), /expires in 1 h 50 min|expires in 1 h 49 min/);
  assert.equal(await row.locator("td[data-label=Attempts]").innerText(), "0 / " + (await messageStatus(m.id)).max_attempts);
  // The queue's name leads to the queue.
  await row.locator("a.queue-name").click();
  await page.locator("#queue-detail").waitFor();
  await eventually(async () => assert.ok((await shownQueueMessageIds(page)).includes(m.id)));

  // The list's state tabs have expired too, with the API's count.
  await openPage(page);
  const counts = (await listPage({ state: "all", limit: "1" })).counts;
  assert.equal(await page.locator("#tabs a[data-state=expired] .count").innerText(), String(counts.expired));
});

test("a queue message's detail shows its queue, priority, expiry, receives and payload", async ({ page }) => {
  const name = uniqueQueue("detail");
  const payload = "line one\n  line two, indented\n{\"job\": 42}";
  const m = await scheduleInto(name, { delay: "20m", priority: "-3", ttl: "2h", payload });
  const api = await messageStatus(m.id);
  await openPage(page, "?" + new URLSearchParams({ id: m.id }));
  await eventually(async () => assert.equal(await detailField(page, "Queue").innerText(), name));
  assert.equal(await detailField(page, "Priority").innerText(), "-3");
  assert.ok((await detailField(page, "Expires").innerText()).includes(localClock(api.expires)));
  assert.equal(await detailField(page, "Receives").innerText(), `0 of at most ${api.max_attempts}`);
  assert.equal(await detailField(page, "Payload").innerText(), payload);
  assert.equal(await detailField(page, "Payload size").innerText(), `${payload.length} bytes`);
  assert.equal(await detailField(page, "Method").innerText(), "POST");
  assert.equal(await detailField(page, "Targets").count(), 0, "a queue message has no targets");
  assert.equal(await detailField(page, "Timeout per attempt").count(), 0);
  assert.equal(await page.locator("#detail-actions").isVisible(), true, "pending: it can be cancelled");
  await screenshot(page, "queue-detail");

  // The queue's name leads to the queue.
  await detailField(page, "Queue").locator("a").click();
  await page.locator("#queue-detail").waitFor();
  assert.equal(await page.locator("#queue-name").innerText(), name);

  // Bytes that are not UTF-8 are shown as the API's base64, said so.
  const binary = await fetch(BASE + "/api/schedule", {
    method: "POST",
    headers: { Authorization: "Bearer " + TOKEN, "Content-Type": "application/x-www-form-urlencoded" },
    body: `queue=${name}&delay=1h&payload=%FF%FEbin%00`,
  }).then((x) => x.json());
  const b64 = (await messageStatus(binary.id)).payload_base64;
  assert.equal(b64, Buffer.from([0xff, 0xfe, 0x62, 0x69, 0x6e, 0x00]).toString("base64"));
  await openPage(page, "?" + new URLSearchParams({ id: binary.id }));
  await eventually(async () => assert.match(await detailField(page, "Payload (base64)").innerText(),
    new RegExp("^" + b64.replace(/[+/=]/g, "\\$&") + "\\s+Not UTF-8 text: shown as base64\\.$")));
  assert.equal(await detailField(page, "Payload").count(), 0);
});

test("the form schedules into a queue, with a priority and a ttl", async ({ page }) => {
  const name = uniqueQueue("form");
  await openPage(page);
  await page.getByLabel("Queue (instead of URLs)").fill(name);
  await page.getByLabel("After a delay").check();
  await page.getByLabel("Delay", { exact: true }).fill("10m");
  await page.getByLabel("Payload").fill("from the form, to a queue");
  await page.locator("#more-options summary").click();
  await page.getByLabel("Priority").fill("-12");
  await page.getByLabel("Expires after").fill("30m");
  await page.getByRole("button", { name: "Schedule", exact: true }).click();
  const link = page.locator("#schedule-result a.id");
  await link.waitFor();
  const m = await messageStatus(await link.innerText());
  assert.equal(m.queue, name);
  assert.equal(m.urls, null);
  assert.equal(m.priority, -12);
  assert.equal(Date.parse(m.expires) - Date.parse(m.due), 30 * 60e3);
  assert.equal(m.payload, "from the form, to a queue");

  // A queue and URLs together: the API's error appears at the queue field.
  await page.getByLabel("Target URLs").fill(NOWHERE);
  await page.getByLabel("Queue (instead of URLs)").fill(name);
  await page.getByRole("button", { name: "Schedule", exact: true }).click();
  await page.locator("#f-queue-error").waitFor();
  assert.match(await page.locator("#f-queue-error").innerText(), /url or queue/);
  // And a priority out of range at the priority field.
  await page.getByLabel("Target URLs").fill("");
  await page.getByLabel("Priority").fill("5000");
  await page.getByRole("button", { name: "Schedule", exact: true }).click();
  await page.locator("#f-priority-error").waitFor();
  assert.match(await page.locator("#f-priority-error").innerText(), /priority/);
});

test("the Queues view fits a 375 px wide screen", async ({ page }) => {
  const name = uniqueQueue("narrow") + "-" + "long-queue-name".repeat(2);
  const m = await scheduleInto(name, { delay: "5m", priority: "1000" });
  await openPage(page, "?" + new URLSearchParams({ view: "queues", queue: name }));
  await eventually(async () => assert.equal(await queueMessageRowOf(page, m.id).count(), 1));
  const overflow = await page.evaluate(() =>
    document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.equal(overflow, 0, "no sideways scrolling on the Queues view");
  const label = await queueRowOf(page, name).locator("td[data-label=Ready]").evaluate(
    (td) => getComputedStyle(td, "::before").content);
  assert.equal(label, '"Ready"');
  await screenshot(page, "queues-375");
}, { viewport: PHONE });

test("a hostile payload and queue name are shown as text, not markup", async ({ page }) => {
  const name = uniqueQueue("hostile");
  const payload = `</pre><script>window.__xss=1</script><img src=x onerror="window.__xss=2"><b>bold</b>`;
  const m = await scheduleInto(name, { payload, delay: "25m" });
  const requests = [];
  page.on("request", (r) => requests.push(r.url()));
  await openPage(page, "?" + new URLSearchParams({ id: m.id }));
  await eventually(async () => assert.equal(await detailField(page, "Payload").innerText(), payload));
  assert.equal(await page.locator("#detail-fields b").count(), 0);

  // A queue name the API would refuse, typed into the address: shown as
  // text (and it lists nothing, as the API says).
  const hostileName = `<img src=x onerror="window.__xss=3">`;
  await openPage(page, "?" + new URLSearchParams({ view: "queues", queue: hostileName }));
  await eventually(async () => assert.equal(await page.locator("#queue-name").innerText(), hostileName));
  await page.locator("#queue-error", { hasText: "Not a queue name" }).waitFor();
  await sleep(300);
  assert.equal(await page.evaluate(() => typeof window.__xss), "undefined");
  assert.equal(await page.evaluate(() => document.querySelectorAll("script").length), 1);
  assert.equal(await page.evaluate(() => document.querySelectorAll("main img, main svg, main b").length), 0);
  assert.deepEqual(requests.filter((u) => /\/x$/.test(u)), [], "no injected image was loaded");
});

// ---- the runner ----

// ---- recurring definitions (API v2): the Recurring view, and the form's cron choice ----

async function defineRecurring(fields) {
  const r = await apiRequest("POST", "/api/recurring", fields.queue ? fields : { url: NOWHERE, ...fields });
  assert.equal(r.status, 201, r.text);
  return r.json;
}

async function recurringInfo(id) {
  return apiRequest("GET", "/api/recurring?" + new URLSearchParams({ id }));
}

function recurringRowOf(page, id) {
  return page.locator(`#recurring tbody tr[data-recurring="${id}"]`);
}

test("the Recurring view shows each definition in words with its next time, and pauses, resumes and deletes", async ({ page }) => {
  const name = uniqueQueue("weekday");
  const d = await defineRecurring({ cron: "0 9 * * 1-5", tz: "Europe/Berlin", name });
  const q = await defineRecurring({ cron: "*/15 * * * *", queue: uniqueQueue("rq") });
  const odd = await defineRecurring({ cron: "5 4 1-7 * mon", payload: "<img src=x onerror=alert(1)>" });

  await openPage(page);
  await page.locator("#nav-recurring").click();
  await page.locator("#recurring-view").waitFor();
  assert.match(page.url(), /\?view=recurring$/);
  assert.equal(await page.locator("#nav-recurring").getAttribute("aria-current"), "page");
  const row = recurringRowOf(page, d.id);
  await row.waitFor();
  const cell = (r, label) => r.locator(`td[data-label="${label}"]`).innerText();
  assert.match(await cell(row, "Definition"), new RegExp(name));
  const schedule = await cell(row, "Schedule");
  assert.match(schedule, /0 9 \* \* 1-5/);
  assert.match(schedule, /on weekdays at 09:00/);
  assert.match(schedule, /Europe\/Berlin/);
  // The next occurrence: the API's instant, on the reader's clock and on the zone's.
  assert.equal(await row.locator('td[data-label="Next"] time').getAttribute("datetime"), d.next);
  assert.match(await cell(row, "Next"), /09:00 in Europe\/Berlin/);
  assert.match(await row.locator('td[data-label="Next"] .relative').innerText(), /^in /);
  assert.match(await cell(row, "Destination"), /127\.0\.0\.1:9/);
  assert.equal(await cell(row, "State"), "active");
  assert.match(await cell(recurringRowOf(page, q.id), "Schedule"), /every 15 minutes/);
  assert.equal(await recurringRowOf(page, q.id).locator("a.queue-name").innerText(), q.queue);
  // No words for what has none easily: the expression alone.
  assert.equal((await cell(recurringRowOf(page, odd.id), "Schedule")).split("\n")[0], "5 4 1-7 * mon");
  await screenshot(page, "recurring");

  await row.getByRole("button", { name: "Pause " + name }).click();
  await eventually(async () => assert.equal((await recurringInfo(d.id)).json.paused, true));
  await eventually(async () => assert.equal(await cell(row, "State"), "paused"));
  assert.match(await cell(row, "Next"), /—/);
  await row.getByRole("button", { name: "Resume " + name }).click();
  await eventually(async () => assert.equal((await recurringInfo(d.id)).json.paused, false));
  await eventually(async () => assert.equal(await cell(row, "State"), "active"));

  await row.getByRole("button", { name: "Delete " + name }).click();
  const dialog = page.locator("#delete-dialog");
  await dialog.waitFor();
  assert.equal(await dialog.locator("#delete-id").innerText(), d.id);
  assert.equal((await recurringInfo(d.id)).status, 200, "nothing happens before confirming");
  await dialog.getByRole("button", { name: "Delete definition" }).click();
  await eventually(async () => assert.equal((await recurringInfo(d.id)).status, 404));
  await eventually(async () => assert.equal(await row.count(), 0));
  assert.equal(await page.locator("#recurring-error").isVisible(), false);
});

test("the schedule form makes a recurring definition from a cron schedule, with the API's error at the cron field", async ({ page }) => {
  const mark = unique("cronform");
  const name = uniqueQueue("form");
  const url = `${NOWHERE}/${mark}`;
  await openPage(page);
  await page.getByLabel("Target URLs").fill(url);
  await page.getByLabel("Payload").fill("report");
  await page.getByLabel("Cron expression").fill("61 * * * *");
  assert.equal(await page.locator("#f-when-cron").isChecked(), true, "typing a schedule picks it");
  await page.getByRole("button", { name: "Schedule", exact: true }).click();
  const cronError = page.locator("#f-cron-error");
  await cronError.waitFor();
  assert.match(await cronError.innerText(), /minute/);
  assert.equal(await page.getByLabel("Cron expression").getAttribute("aria-invalid"), "true");

  await page.getByLabel("Cron expression").fill("30 8 * * *");
  await page.getByLabel("Time zone").fill("Europe/Berlin");
  await page.locator("#f-name").fill(name);
  await page.getByRole("button", { name: "Schedule", exact: true }).click();
  await page.locator("#schedule-result", { hasText: "Made the recurring definition" }).waitFor();
  assert.equal(await cronError.isVisible(), false);
  const made = (await apiRequest("GET", "/api/recurring")).json.recurring.find((x) => x.name === name);
  assert.ok(made, "the API has the definition");
  assert.equal(made.cron, "30 8 * * *");
  assert.equal(made.tz, "Europe/Berlin");
  assert.deepEqual(made.urls, [url]);
  assert.equal(made.payload_bytes, 6);
  assert.match(made.next_local, /T08:30:00\+0[12]:00$/);
  // It made a definition, not a message.
  const all = await listPage({ state: "all", limit: "1000" });
  assert.equal(all.messages.filter((m) => (m.urls || []).includes(url)).length, 0);

  // The result links to the Recurring view, where it is listed.
  await page.locator("#schedule-result a").click();
  await recurringRowOf(page, made.id).waitFor();
  assert.match(await recurringRowOf(page, made.id).innerText(), /every day at 08:30/);
});

async function runTest(browser, t) {
  const context = await browser.newContext({
    viewport: t.options.viewport || DESKTOP, locale: "en-GB", timezoneId: ZONE,
  });
  // Only the stack under test: anything else the page tried would be a bug.
  const strayRequests = [];
  await context.route((url) => !url.href.startsWith(BASE + "/"), (route) => {
    strayRequests.push(route.request().url());
    return route.abort();
  });
  const page = await context.newPage();
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(e.message));
  page.setDefaultTimeout(8000);
  let timer;
  try {
    await Promise.race([
      t.fn({ page, context }),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${TEST_TIMEOUT_MS} ms`)), TEST_TIMEOUT_MS);
      }),
    ]);
    assert.deepEqual(pageErrors, [], "the page threw");
    assert.deepEqual(strayRequests, [], "the page asked for something off the stack");
  } catch (e) {
    await screenshot(page, "FAIL-" + t.name.replace(/[^a-z0-9]+/gi, "-")).catch(() => {});
    throw e;
  } finally {
    clearTimeout(timer);
    await context.close();
  }
}

async function main() {
  // Screenshots of failures from an earlier run would only mislead.
  rmSync(OUT, { recursive: true, force: true });
  if (!/^http:\/\/127\.0\.0\.1:\d+$/.test(BASE) || !TOKEN) {
    console.log("browser: POSTDATE_URL (http://127.0.0.1:PORT) and POSTDATE_TOKEN must be set; use run.py");
    console.log("browser: 0 passed, 1 failed");
    process.exitCode = 1;
    return;
  }
  const wanted = process.argv.slice(2);
  const chosen = tests.filter((t) => !wanted.length || wanted.some((w) => t.name.includes(w)));
  let passed = 0, failed = 0;
  let browser;
  try {
    browser = await chromium.launch({
      executablePath: "/usr/bin/chromium", headless: true, args: ["--no-sandbox"],
    });
  } catch (e) {
    console.log("browser: chromium did not start: " + e.message);
    console.log("browser: 0 passed, 1 failed");
    process.exitCode = 1;
    return;
  }
  try {
    for (const t of chosen) {
      const start = Date.now();
      const took = () => ((Date.now() - start) / 1000).toFixed(2) + "s";
      try {
        await runTest(browser, t);
        passed++;
        console.log(`ok   ${t.name} (${took()})`);
      } catch (e) {
        failed++;
        console.log(`FAIL ${t.name} (${took()})`);
        console.log((e && e.stack ? e.stack : String(e)).replace(/^/gm, "  "));
      }
    }
  } finally {
    await browser.close();
  }
  console.log(`browser: ${passed} passed, ${failed} failed`);
  process.exitCode = failed ? 1 : 0;
}

await main();
