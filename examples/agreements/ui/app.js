// Agreements UI: a paged table of agreements kept in the extension's KV
// storage, and a Sync button that pulls them from the vendor API through the
// extension's own handler. Talks to the host page only through iframe.js.
import { connect, api, onTheme } from "/ext-sdk/v1/iframe.js";

const PAGE_SIZE = 10;
let page = 1;
let total = 0;

const $ = (id) => document.getElementById(id);

function setStatus(text) { $("status").textContent = text; }

function showError(err) {
  const box = $("error");
  box.hidden = false;
  box.dataset.code = err.code || "error";
  box.textContent = err.code === "not_installed"
    ? "This extension is not installed for your organisation (not_installed)."
    : `Something went wrong: ${err.message || err.code}`;
  $("rows").replaceChildren();
  setStatus("Error");
}

async function call(path, init) {
  const res = await api.fetch(path, init);
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    const e = body.error || {};
    throw Object.assign(new Error(e.message || res.statusText), { code: e.code || `http_${res.status}` });
  }
  return body;
}

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

async function load() {
  try {
    const data = await call(`/agreements?page=${page}&page_size=${PAGE_SIZE}`);
    total = data.total;
    const rows = data.items.map((a) => {
      const tr = document.createElement("tr");
      tr.dataset.id = a.id;
      const status = document.createElement("span");
      status.className = "badge";
      status.textContent = a.status;
      const st = document.createElement("td");
      st.append(status);
      tr.append(cell(a.id), cell(a.client), cell(a.name), st, cell(`$${a.monthly_amount.toFixed(2)}`, "num"));
      return tr;
    });
    if (rows.length === 0) {
      const tr = document.createElement("tr");
      const td = cell("No agreements yet — press Sync.", "muted");
      td.colSpan = 5;
      tr.append(td);
      rows.push(tr);
    }
    $("rows").replaceChildren(...rows);
    const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
    $("page").textContent = `Page ${page} of ${pages} · ${total} agreements`;
    $("prev").disabled = page <= 1;
    $("next").disabled = page >= pages;
    $("sync").disabled = false;
    $("error").hidden = true;
    setStatus(data.synced_at ? `Synced ${new Date(data.synced_at).toLocaleString()}` : "Not synced yet");
  } catch (err) {
    showError(err);
  }
}

async function sync() {
  $("sync").disabled = true;
  setStatus("Syncing…");
  try {
    const r = await call("/agreements/sync", { method: "POST" });
    setStatus(`Synced ${r.synced} agreements`);
    page = 1;
    await load();
  } catch (err) {
    showError(err);
  } finally {
    $("sync").disabled = false;
  }
}

$("prev").onclick = () => { page--; load(); };
$("next").onclick = () => { page++; load(); };
$("sync").onclick = sync;

onTheme(() => {});
connect().then(load, (err) => showError({ code: "bootstrap_failed", message: err.message }));
