"""The view's one page: self-contained HTML (inline CSS and JavaScript; nothing fetched but its own API).

It runs inside the Airflow UI's frame (the plugin's external view) or alone at ``/durable-jobs/``. Its
requests carry the UI's ``_token`` cookie (same origin). The ids and classes below are what the browser tests
find: ``#records`` (rows ``tr.record[data-ti-id]``), ``#filter-dag``, ``#filter-system``, ``#filter-phase``,
``#filter-outcome``, ``#prev-page``, ``#next-page``, ``#page-size``, ``#endpoints`` (rows
``tr.endpoint[data-state]``), ``button.cancel-job``, ``button.copy-links`` and ``#error``; ``body[data-loads]``
counts the loads that ended.
"""

from __future__ import annotations

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Durable jobs</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px system-ui,sans-serif;margin:1rem;color:#1a202c}
h1{font-size:1.3rem}h2{font-size:1.1rem;margin-top:1.5rem}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #e2e8f0;padding:4px 6px;text-align:left;
vertical-align:top}th{background:#f7fafc}
.filters label{margin-right:1rem}#error{display:none;background:#fed7d7;color:#742a2a;padding:.5rem;margin:.5rem 0}
#error.shown{display:block}.unreadable{color:#9b2c2c}.muted{color:#718096}.history{font-size:12px;margin:0;padding-left:1rem}
button{cursor:pointer}.pager{margin:.5rem 0}td .muted{font-size:12px}.nowrap{white-space:nowrap}
.ident{overflow-wrap:anywhere}td.task{min-width:13em}td.ident{min-width:9em}
.state-ok{color:#276749}.state-unknown{color:#975a16}.state-auth-refused{color:#9b2c2c}.stale{color:#718096}
</style></head><body>
<h1>Durable jobs</h1>
<div id="error" role="alert"></div>
<div class="filters">
<label>DAG <input id="filter-dag" size="20"></label>
<label>System <input id="filter-system" size="14"></label>
<label>Phase <select id="filter-phase"><option value="">any</option><option>submitting</option>
<option>submitted</option><option>finished</option></select></label>
<label>Outcome <select id="filter-outcome"><option value="">any</option><option>succeeded</option>
<option>failed</option><option>cancelled</option><option>lost</option></select></label>
</div>
<div class="pager"><button id="prev-page" type="button">&larr; Newer</button>
<span id="page-info" class="muted"></span>
<button id="next-page" type="button">Older &rarr;</button>
<label>per page <select id="page-size"><option>10</option><option selected>50</option><option>200</option>
<option>500</option></select></label></div>
<table id="records"><thead><tr><th>Task instance</th><th>Try</th><th>State</th><th>System / endpoint</th>
<th>Gen.</th><th>Phase</th><th>Job</th><th>Deferred since</th><th>Last status</th><th>Earlier generations</th>
<th>Tries</th><th>Actions</th></tr></thead><tbody></tbody></table>
<h2>Endpoints</h2>
<table id="endpoints"><thead><tr><th>System</th><th>Endpoint</th><th>State</th><th>Since</th><th>Last poll</th>
<th>Active jobs</th><th>Watched</th><th>Last record update</th><th>Triggerers</th></tr></thead><tbody></tbody></table>
<script>
"use strict";
let offset = 0, total = 0, loads = 0, latest = 0;
const $ = (id) => document.getElementById(id);
function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
// a recorded time to the second, in its own zone ("2026-01-01 10:00:00 +00:00"); the full value in its title
function when(iso) {
  return iso ? String(iso).replace("T", " ").replace(/\\.\\d+/, "").replace(/([+-]\\d\\d:\\d\\d)$/, " $1") : "";
}
function timeCell(iso, before) {
  const td = el("td");
  if (before) td.append(el("div", before));
  if (iso) {  // it wraps between the day and the time only
    const d = el("div", null, "muted"), [day, time] = when(iso).split(/ (.*)/);
    d.title = iso;
    d.append(el("span", day, "nowrap"), " ", el("span", time, "nowrap"));
    td.append(d);
  }
  return td;
}
function showError(msg) { const e = $("error"); e.textContent = msg; e.className = msg ? "shown" : ""; }
async function api(path, options) {
  const r = await fetch(path, Object.assign({credentials: "same-origin", headers: {"Accept": "application/json"}},
                                            options || {}));
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  if (r.status === 401) throw new Error("Not signed in: sign in to Airflow, then reload this page.");
  if (!r.ok) throw new Error((body && body.detail) ? String(body.detail) : ("HTTP " + r.status));
  return body;
}
const pageSize = () => Number($("page-size").value);
function query() {
  const p = new URLSearchParams({limit: String(pageSize()), offset: String(offset)});
  const f = {dag_id: "filter-dag", system: "filter-system", phase: "filter-phase", outcome: "filter-outcome"};
  for (const [k, id] of Object.entries(f)) { const v = $(id).value.trim(); if (v) p.set(k, v); }
  return p.toString();
}
function taskCell(r) {
  const td = el("td", null, "task");
  td.append(el("div", r.dag_id + "." + r.task_id + (r.map_index >= 0 ? "[" + r.map_index + "]" : ""), "ident"));
  td.append(el("div", r.run_id, "muted ident"));
  return td;
}
function historyCell(r) {
  const td = el("td");
  if (!r.history || !r.history.length) return td;
  const ul = el("ul", null, "history");
  for (const h of r.history) ul.append(el("li", "gen " + h.generation + ": " + (h.job_id || "no job") + " \\u2192 " +
                                             (h.outcome || "?") + (h.message ? " (" + h.message + ")" : "")));
  td.append(ul);
  return td;
}
function triesCell(r) {
  const td = el("td");
  if (!r.tries || !r.tries.length) return td;
  const ul = el("ul", null, "history");
  for (const t of r.tries) ul.append(el("li", "try " + t.try + ": " + t.decision));
  td.append(ul);
  return td;
}
function actionsCell(r) {
  const td = el("td");
  if (r.links && r.links.length) {
    const b = el("button", "Copy links", "copy-links");
    b.type = "button";
    b.dataset.links = r.links.map((l) => l.name + ": " + l.url).join("\\n");
    b.addEventListener("click", () => copyLinks(b));
    td.append(b);
    for (const l of r.links) {
      const a = el("a", l.name);
      if (/^https?:\\/\\//i.test(l.url)) a.href = l.url;
      a.target = "_blank"; a.rel = "noopener noreferrer";
      td.append(el("br"), a);
    }
  }
  if (r.cancellable) {
    const b = el("button", "Cancel job", "cancel-job");
    b.type = "button";
    b.addEventListener("click", () => cancelJob(r, b));
    td.append(el("br"), b);
  }
  return td;
}
async function copyLinks(button) {
  try { await navigator.clipboard.writeText(button.dataset.links); button.textContent = "Copied"; }
  catch (e) { showError("Could not copy the links: " + e.message); }
}
async function cancelJob(r, button) {
  if (!window.confirm("Cancel " + (r.job_id || "the job") + " of " + r.dag_id + "." + r.task_id + "?")) return;
  button.disabled = true;
  try {
    await api("api/records/" + encodeURIComponent(r.ti_id) + "/cancel", {method: "POST"});
    showError("");
    await load();
  } catch (e) { showError("Cancel refused: " + e.message); button.disabled = false; }
}
function recordRow(r) {
  const tr = el("tr", null, "record" + (r.readable ? "" : " unreadable"));
  tr.dataset.tiId = r.ti_id || "";
  tr.dataset.phase = r.phase;
  tr.append(taskCell(r), el("td", r.try_number), el("td", r.state));
  if (!r.readable) {
    const td = el("td", "unreadable record: " + r.error); td.colSpan = 8; tr.append(td, el("td")); return tr;
  }
  tr.append(el("td", r.system + (r.endpoint ? " / " + r.endpoint : "")), el("td", r.generation),
            el("td", r.phase + (r.outcome ? " (" + r.outcome + ")" : "")), el("td", r.job_id || "\\u2014", "ident"),
            timeCell(r.deferred_since), timeCell(r.last_status_at, r.last_status),
            historyCell(r), triesCell(r), actionsCell(r));
  return tr;
}
function triggerersCell(e) {
  const td = el("td");
  if (!e.triggerers || !e.triggerers.length) return td;
  const ul = el("ul", null, "history");
  for (const t of e.triggerers) {
    const stale = t.stale ? " (stale: " + Math.round(t.age_seconds) + " s old)" : "";
    const text = t.readable ? t.triggerer + ": " + t.state + ", " + t.watched + " watched, last poll " +
                              (when(t.last_poll) || "none") + stale
                            : t.triggerer + ": unreadable report (" + t.error + ")";
    ul.append(el("li", text, t.stale || !t.readable ? "stale" : ""));
  }
  td.append(ul);
  return td;
}
function endpointRow(e) {
  const tr = el("tr", null, "endpoint");
  tr.dataset.state = e.state;
  const state = el("td", null, "state-" + e.state.replace(/ /g, "-"));
  state.append(el("div", e.state), el("div", e.state_detail, "muted"));
  tr.append(el("td", e.system), el("td", e.endpoint || "\\u2014"), state, timeCell(e.since),
            timeCell(e.last_poll), el("td", e.jobs), el("td", e.watched), timeCell(e.last_update), triggerersCell(e));
  return tr;
}
async function load() {
  const mine = ++latest;  // the answers of an older load that come late are dropped: the last one asked shows
  let data, ep, failure = null;
  try { [data, ep] = await Promise.all([api("api/records?" + query()), api("api/endpoints")]); }
  catch (e) { failure = e; }
  if (mine !== latest) return;
  if (failure) showError(failure.message);
  else {
    total = data.total;
    $("records").tBodies[0].replaceChildren(...data.records.map(recordRow));
    const last = Math.min(offset + data.records.length, total);
    $("page-info").textContent = total ? (offset + 1) + "\\u2013" + last + " of " + total : "no records";
    $("prev-page").disabled = offset === 0;
    $("next-page").disabled = offset + pageSize() >= total;
    $("endpoints").tBodies[0].replaceChildren(...ep.endpoints.map(endpointRow));
    showError("");
  }
  document.body.dataset.loads = String(++loads);  // how many loads ended: what a test waits for
}
for (const id of ["filter-dag", "filter-system", "filter-phase", "filter-outcome", "page-size"]) {
  $(id).addEventListener("change", () => { offset = 0; load(); });
}
$("prev-page").addEventListener("click", () => { offset = Math.max(0, offset - pageSize()); load(); });
$("next-page").addEventListener("click", () => { offset += pageSize(); load(); });
load();
</script></body></html>
"""
