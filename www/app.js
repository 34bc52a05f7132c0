// postdate's page: lists pending messages from /api/status. Everything shown
// comes from the API and is untrusted, so it is set with textContent only.
"use strict";

const tokenKey = "postdate.token";

// A token in the address (#token=...) is kept and then removed from it.
function takeTokenFromHash() {
  const m = location.hash.match(/[#&]token=([^&]+)/);
  if (m) {
    localStorage.setItem(tokenKey, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
}

function askForToken() {
  document.getElementById("token-form").hidden = false;
}

function showError(text) {
  const e = document.getElementById("error");
  e.textContent = text;
  e.hidden = !text;
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.appendChild(td);
}

async function refresh() {
  const token = localStorage.getItem(tokenKey);
  let r;
  try {
    r = await fetch("/api/status?state=pending", {
      headers: token ? { Authorization: "Bearer " + token } : {},
    });
  } catch (e) {
    showError("The API is unreachable.");
    return;
  }
  if (r.status === 401) {
    askForToken();
    showError("The API needs a token.");
    return;
  }
  const body = await r.json();
  if (!r.ok) {
    showError(body.error || "The API answered " + r.status + ".");
    return;
  }
  showError("");
  const tbody = document.querySelector("#messages tbody");
  tbody.replaceChildren();
  for (const m of body.messages) {
    const row = document.createElement("tr");
    cell(row, new Date(m.due).toLocaleString());
    cell(row, m.urls.join("\n"));
    cell(row, m.attempts + " / " + m.max_attempts);
    cell(row, m.state);
    cell(row, m.id);
    tbody.appendChild(row);
  }
  document.getElementById("empty").hidden = body.messages.length !== 0;
  document.getElementById("summary").textContent =
    body.counts.pending + " pending, " + body.counts.delivered + " delivered, " +
    body.counts.failed + " failed";
}

document.getElementById("token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  localStorage.setItem(tokenKey, document.getElementById("token").value);
  document.getElementById("token-form").hidden = true;
  refresh();
});

takeTokenFromHash();
refresh();
setInterval(() => { if (!document.hidden) refresh(); }, 5000);
