// react.html: a React app on the UI kit's bindings, with React from npm
// (served under vendor/ by the fake gateway). useExtension() gives api.fetch;
// <DataTable> pages and sorts server-side through /items.
import { useExtension, DataTable } from "/ext-sdk/v1/react.js?react=./vendor/react.js";
import React from "./vendor/react.js";
import ReactDOMClient from "./vendor/react-dom-client.js";

const h = React.createElement;
const columns = [
  { key: "id", header: "ID", sortable: true },
  { key: "name", header: "Name", sortable: true },
  { key: "amount", header: "Amount", sortable: true, align: "right" },
];

function App() {
  const { ready, api, error } = useExtension();
  const [page, setPage] = React.useState(1);
  const [pageSize, setPageSize] = React.useState(10);
  const [sort, setSort] = React.useState({ key: "", direction: "asc" });
  const [result, setResult] = React.useState({ rows: [], total: 0, loading: true, error: "" });

  React.useEffect(() => {
    if (!ready) return undefined;
    let live = true;
    setResult((r) => ({ ...r, loading: true }));
    const q = new URLSearchParams({ page, page_size: pageSize, sort: sort.key, direction: sort.direction });
    api.fetch(`/items?${q}`)
      .then((r) => r.json())
      .then((b) => live && setResult({ rows: b.items, total: b.total, loading: false, error: "" }))
      .catch((e) => live && setResult({ rows: [], total: 0, loading: false, error: String(e.message) }));
    return () => {
      live = false;
    };
  }, [ready, page, pageSize, sort.key, sort.direction]);

  if (error) return h("p", { id: "error" }, String(error.message));
  return h("div", null,
    h("p", { id: "react-version" }, React.version),
    h(DataTable, {
      columns,
      data: result.rows,
      loading: result.loading,
      error: result.error,
      pagination: {
        page, pageSize, total: result.total, pageSizeOptions: [10, 20],
        onPageChange: setPage,
        onPageSizeChange: (n) => { setPageSize(n); setPage(1); },
      },
      sort: { ...sort, onSortChange: (key, direction) => { setSort({ key, direction }); setPage(1); } },
    }));
}

ReactDOMClient.createRoot(document.getElementById("root")).render(h(App));
