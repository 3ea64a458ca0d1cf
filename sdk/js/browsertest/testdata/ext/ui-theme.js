// ui-theme.html: the UI kit inside the host's sandboxed iframe, restyled by
// the host's theme tokens. Probed through app.js's command channel.
import "/ext-sdk/v1/ui.js";

const t = document.getElementById("t");
t.columns = [{ key: "id", header: "ID", sortable: true }];
t.rows = [{ id: "A" }, { id: "B" }];
