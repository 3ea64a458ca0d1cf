// Agreements UI, built on the extedge UI kit: an <ext-data-table> that pages
// and sorts server-side (the guest's list endpoint does both), status
// badges, and a Sync <ext-button> that pulls the agreements from the vendor
// API through the extension's own handler. Talks to the host page only
// through iframe.js; styled by ui.css from the host's theme tokens.
import { connect, api } from "/ext-sdk/v1/iframe.js";
import { statusTone } from "/ext-sdk/v1/ui.js";

const $ = (id) => document.getElementById(id);
const table = $("table");
const syncButton = $("sync");

function setStatus(text) { $("status").textContent = text; }

// messageFor turns an API error into what the user reads.
function messageFor(err) {
  return err.code === "not_installed"
    ? "This extension is not installed for your organisation (not_installed)."
    : `Something went wrong: ${err.message || err.code}`;
}

function showError(err) {
  const box = $("error");
  box.hidden = false;
  box.dataset.code = err.code || "error";
  box.textContent = messageFor(err);
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

function badge(status) {
  const b = document.createElement("ext-badge");
  b.setAttribute("tone", statusTone(status));
  b.textContent = status;
  return b;
}

table.columns = [
  { key: "id", header: "ID", sortable: true },
  { key: "client", header: "Client", sortable: true },
  { key: "name", header: "Plan", sortable: true },
  { key: "status", header: "Status", sortable: true, render: badge },
  { key: "monthly_amount", header: "Monthly", sortable: true, align: "right", render: (v) => `$${Number(v).toFixed(2)}` },
];

// The table calls this on every page, page size and sort change and on
// Retry; the guest answers {items, total, …} for exactly that page.
async function loadPage({ page, pageSize, sortKey, sortDirection, signal }) {
  const q = new URLSearchParams({ page, page_size: pageSize, sort: sortKey || "id", direction: sortDirection });
  try {
    const body = await call(`/agreements?${q}`, { signal });
    $("error").hidden = true;
    syncButton.disabled = false;
    setStatus(body.synced_at ? `Synced ${new Date(body.synced_at).toLocaleString()}` : "Not synced yet");
    return body;
  } catch (err) {
    if (err.name !== "AbortError") setStatus("Error");
    throw Object.assign(new Error(messageFor(err)), { code: err.code });
  }
}

syncButton.addEventListener("click", async () => {
  syncButton.loading = true;
  setStatus("Syncing…");
  try {
    const r = await call("/agreements/sync", { method: "POST" });
    $("error").hidden = true;
    table.page = 1;
    await table.reload();
    setStatus(`Synced ${r.synced} agreements`);
  } catch (err) {
    showError(err);
  } finally {
    syncButton.loading = false;
  }
});

connect().then(
  () => { table.loader = loadPage; },
  (err) => showError({ code: "bootstrap_failed", message: err.message }),
);
