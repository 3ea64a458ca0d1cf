// Drives ui-table.html for ui_test.go: a server-side table over the fake
// /items endpoint (?format=psa asks for {data, meta}), a client-side one,
// and buttons whose clicks are counted. window.events records every table
// event, window.clicks every button click.
import { statusTone } from "/ext-sdk/v1/ui.js";

const format = new URLSearchParams(location.search).get("format");
window.events = [];
for (const type of ["page-change", "page-size-change", "sort-change", "row-click", "retry"]) {
  document.addEventListener(type, (e) => window.events.push({ type, table: e.target.id, detail: JSON.parse(JSON.stringify(e.detail)) }));
}
window.clicks = {};
for (const b of document.querySelectorAll("ext-button")) {
  b.addEventListener("click", () => (window.clicks[b.id] = (window.clicks[b.id] || 0) + 1));
}

const badge = (value) => {
  const b = document.createElement("ext-badge");
  b.setAttribute("tone", statusTone(value));
  b.textContent = value;
  return b;
};

const server = document.getElementById("server");
server.columns = [
  { key: "id", header: "ID", sortable: true },
  { key: "name", header: "Name", sortable: true },
  { key: "status", header: "Status", sortable: true, render: badge },
  { key: "amount", header: "Amount", sortable: true, align: "right", render: (v) => `$${v}` },
];
server.loader = ({ page, pageSize, sortKey, sortDirection, signal }) => {
  const q = new URLSearchParams({ page, page_size: pageSize, sort: sortKey, direction: sortDirection });
  if (format) q.set("format", format);
  return fetch(`/api/ext/com.acme.test/items?${q}`, { signal });
};

const local = document.getElementById("local");
local.columns = [
  { key: "id", header: "ID", sortable: true },
  { key: "name", header: "Name", sortable: true },
  { key: "status", header: "Status" },
];
local.rows = [
  { id: "L-1", name: "Pear", status: "active" },
  { id: "L-2", name: "Apple", status: "expired" },
  { id: "L-3", name: "Fig", status: "pending" },
  { id: "L-4", name: "Banana", status: "active" },
  { id: "L-5", name: "Cherry", status: "active" },
];

window.UI_READY = true;
