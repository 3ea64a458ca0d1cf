package api_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/extedge/extedge/internal/registryapi"
)

// historyEnv has com.acme.crm installed for tenant-a and tenant-b and
// stores n records for tenant-a's install, one a second from base, and
// one record for tenant-b's. Record i: outcome timeout when i%5 == 0, else
// ok; http status 500 when i%4 == 0, else 200; endpoint "GET /items/:id"
// for odd i, else "GET /items"; two records share each started_at, so the
// id must break ties.
func historyEnv(t *testing.T, n int) (*env, time.Time, []registryapi.ExecutionRecord) {
	t.Helper()
	base := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	e := newEnv(t, envOptions{now: func() time.Time { return base.Add(time.Hour) }})
	e.mustPublish("com.acme.crm", "1.0.0")
	ina := e.install("tenant-a", "com.acme.crm", "1.0.0")
	inb := e.install("tenant-b", "com.acme.crm", "1.0.0")
	var recs []registryapi.ExecutionRecord
	for i := range n {
		rec := registryapi.ExecutionRecord{
			RequestID: fmt.Sprintf("req-%03d", i), TenantID: "tenant-a", ExtensionID: "com.acme.crm", InstallID: ina.ID,
			VersionID: ina.Version.ID, ContentHash: ina.ContentHash, Endpoint: "GET /items",
			StartedAt: base.Add(time.Duration(i/2) * time.Second), Outcome: "ok", HTTPStatus: 200,
			DurationMS: 4, CPUMS: 1.5, EgressBytes: 10, PeakMemoryBytes: 1 << 20,
		}
		if i%2 == 1 {
			rec.Endpoint = "GET /items/:id"
		}
		if i%5 == 0 {
			rec.Outcome, rec.HTTPStatus = "timeout", 0
		} else if i%4 == 0 {
			rec.HTTPStatus = 500
		}
		rec.FinishedAt = rec.StartedAt.Add(4 * time.Millisecond)
		recs = append(recs, rec)
	}
	recs = append(recs, registryapi.ExecutionRecord{RequestID: "req-b", TenantID: "tenant-b", ExtensionID: "com.acme.crm", InstallID: inb.ID,
		StartedAt: base, Outcome: "ok", HTTPStatus: 200, DurationMS: 1, EgressBytes: 7})
	if err := e.client(e.service).PostExecutions(t.Context(), recs); err != nil {
		t.Fatal(err)
	}
	return e, base, recs[:n]
}

const historyPath = "/v1/tenants/tenant-a/installs/com.acme.crm/executions"

func (e *env) executions(token, query string) registryapi.ExecutionPage {
	e.t.Helper()
	r := e.do("GET", historyPath+"?"+query, token, nil, nil)
	expect(e.t, r, http.StatusOK, "")
	var page registryapi.ExecutionPage
	r.decode(e.t, &page)
	if page.Executions == nil {
		e.t.Fatalf("no executions list: %s", r.body)
	}
	return page
}

// walk follows next_cursor from the first page of query and returns every
// record's request id in the order served.
func (e *env) walk(query string, pageSize int) (ids []string, pages int) {
	e.t.Helper()
	cursor := ""
	for {
		q := query + "&limit=" + fmt.Sprint(pageSize)
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		page := e.executions(e.tenantA, q)
		pages++
		if len(page.Executions) > pageSize {
			e.t.Fatalf("page of %d records for limit %d", len(page.Executions), pageSize)
		}
		for _, x := range page.Executions {
			ids = append(ids, x.RequestID)
		}
		if page.NextCursor == "" {
			return ids, pages
		}
		if pages > 1000 {
			e.t.Fatal("pagination does not end")
		}
		cursor = page.NextCursor
	}
}

// TestExecutionHistoryPagination: walking every page with any page size
// yields each record exactly once, newest first (started_at, then id,
// descending), and the last page has no cursor.
func TestExecutionHistoryPagination(t *testing.T) {
	e, _, recs := historyEnv(t, 57)
	// Newest first: higher started_at first; within a second the later
	// insert (higher id, odd i) first.
	var want []string
	for i := len(recs) - 1; i >= 0; i-- {
		want = append(want, recs[i].RequestID)
	}
	for _, size := range []int{1, 2, 7, 56, 57, 58, 500} {
		t.Run(fmt.Sprintf("page size %d walks every record once in order", size), func(t *testing.T) {
			got, pages := e.walk("", size)
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("walked %d records:\n%v\nwant %d:\n%v", len(got), got, len(want), want)
			}
			if wantPages := (len(recs) + size - 1) / size; pages != wantPages && !(len(recs)%size == 0 && pages == wantPages+1) {
				t.Fatalf("%d pages, want %d", pages, wantPages)
			}
		})
	}
	t.Run("a filtered walk pages through the matching records only", func(t *testing.T) {
		got, _ := e.walk("outcome=ok&endpoint="+url.QueryEscape("GET /items/:id"), 4)
		var want []string
		for i := len(recs) - 1; i >= 0; i-- {
			if recs[i].Outcome == "ok" && recs[i].Endpoint == "GET /items/:id" {
				want = append(want, recs[i].RequestID)
			}
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("got %v, want %v", got, want)
		}
	})
	t.Run("records arriving during a walk do not shift its pages", func(t *testing.T) {
		first := e.executions(e.tenantA, "limit=10")
		late := recs[0]
		late.RequestID, late.StartedAt = "req-late", recs[len(recs)-1].StartedAt.Add(time.Minute)
		if err := e.client(e.service).PostExecutions(t.Context(), []registryapi.ExecutionRecord{late}); err != nil {
			t.Fatal(err)
		}
		second := e.executions(e.tenantA, "limit=10&cursor="+url.QueryEscape(first.NextCursor))
		if second.Executions[0].RequestID != want[10] {
			t.Fatalf("second page starts at %s, want %s", second.Executions[0].RequestID, want[10])
		}
	})
	t.Run("the record carries what the runner sent", func(t *testing.T) {
		page := e.executions(e.tenantA, "request_id=req-003")
		if len(page.Executions) != 1 {
			t.Fatalf("request_id filter: %+v", page.Executions)
		}
		x, r := page.Executions[0], recs[3]
		if x.ID == "" || x.InstallID != r.InstallID || x.VersionID != r.VersionID || x.ContentHash != r.ContentHash ||
			x.Endpoint != r.Endpoint || x.Outcome != "ok" || x.HTTPStatus != 200 || x.DurationMS != 4 || x.CPUMS != 1.5 ||
			x.EgressBytes != 10 || x.PeakMemoryBytes != 1<<20 || !x.StartedAt.Equal(r.StartedAt) || !x.FinishedAt.Equal(r.FinishedAt) {
			t.Fatalf("record %+v, sent %+v", x, r)
		}
	})
}

// TestExecutionHistoryFilters: each filter selects exactly the records it
// names, and filters combine.
func TestExecutionHistoryFilters(t *testing.T) {
	e, base, recs := historyEnv(t, 40)
	match := func(keep func(i int, r registryapi.ExecutionRecord) bool) []string {
		var out []string
		for i := len(recs) - 1; i >= 0; i-- {
			if keep(i, recs[i]) {
				out = append(out, recs[i].RequestID)
			}
		}
		return out
	}
	at := func(sec int) string {
		return url.QueryEscape(base.Add(time.Duration(sec) * time.Second).Format(time.RFC3339))
	}
	cases := []struct {
		name  string
		query string
		keep  func(i int, r registryapi.ExecutionRecord) bool
	}{
		{"no filter lists every record", "", func(int, registryapi.ExecutionRecord) bool { return true }},
		{"since is inclusive", "since=" + at(15), func(i int, _ registryapi.ExecutionRecord) bool { return i/2 >= 15 }},
		{"until is exclusive", "until=" + at(3), func(i int, _ registryapi.ExecutionRecord) bool { return i/2 < 3 }},
		{"since and until make a window", "since=" + at(5) + "&until=" + at(8), func(i int, _ registryapi.ExecutionRecord) bool { return i/2 >= 5 && i/2 < 8 }},
		{"outcome names one code", "outcome=timeout", func(_ int, r registryapi.ExecutionRecord) bool { return r.Outcome == "timeout" }},
		{"outcome ok is the successes", "outcome=ok", func(_ int, r registryapi.ExecutionRecord) bool { return r.Outcome == "ok" }},
		{"outcome error is every failure", "outcome=error", func(_ int, r registryapi.ExecutionRecord) bool { return r.Outcome != "ok" }},
		{"an unknown outcome matches nothing", "outcome=memory_exceeded", func(int, registryapi.ExecutionRecord) bool { return false }},
		{"endpoint matches the manifest route", "endpoint=" + url.QueryEscape("GET /items"), func(_ int, r registryapi.ExecutionRecord) bool { return r.Endpoint == "GET /items" }},
		{"status matches the guest status", "status=500", func(_ int, r registryapi.ExecutionRecord) bool { return r.HTTPStatus == 500 }},
		{"a status class matches its range", "status=2xx", func(_ int, r registryapi.ExecutionRecord) bool { return r.HTTPStatus/100 == 2 }},
		{"request_id finds one call", "request_id=req-017", func(_ int, r registryapi.ExecutionRecord) bool { return r.RequestID == "req-017" }},
		{"filters combine", "outcome=ok&status=2xx&endpoint=" + url.QueryEscape("GET /items/:id") + "&since=" + at(10),
			func(i int, r registryapi.ExecutionRecord) bool {
				return r.Outcome == "ok" && r.HTTPStatus/100 == 2 && r.Endpoint == "GET /items/:id" && i/2 >= 10
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			page := e.executions(e.tenantA, c.query+"&limit=500")
			var got []string
			for _, x := range page.Executions {
				got = append(got, x.RequestID)
			}
			if want := match(c.keep); strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("got %v\nwant %v", got, want)
			}
		})
	}
	t.Run("the default page is 100 records", func(t *testing.T) {
		if page := e.executions(e.admin, ""); len(page.Executions) != 40 || page.NextCursor != "" {
			t.Fatalf("%d records, cursor %q", len(page.Executions), page.NextCursor)
		}
	})
}

// TestExecutionHistoryRejects: bad parameters and cursors are
// invalid_request naming the field; another tenant's admin is forbidden;
// an extension that is not installed is not_installed.
func TestExecutionHistoryRejects(t *testing.T) {
	e, _, _ := historyEnv(t, 12)
	first := e.executions(e.tenantA, "limit=5&outcome=ok")
	if first.NextCursor == "" {
		t.Fatal("no cursor on a partial page")
	}
	flip := func(c string, i int) string {
		b := []byte(c)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	bad := []struct {
		name, query, field string
	}{
		{"limit 0", "limit=0", "limit"},
		{"limit above 500", "limit=501", "limit"},
		{"limit not a number", "limit=ten", "limit"},
		{"since not RFC 3339", "since=yesterday", "since"},
		{"until before since", "since=2026-12-07T10:00:10Z&until=2026-12-07T10:00:00Z", "until"},
		{"outcome with capitals", "outcome=Timeout", "outcome"},
		{"status out of range", "status=700", "status"},
		{"status class 6xx", "status=6xx", "status"},
		{"a cursor that is not one", "cursor=nope", "cursor"},
		{"a cursor with one character changed", "outcome=ok&cursor=" + url.QueryEscape(flip(first.NextCursor, 5)), "cursor"},
		{"a cursor with its check changed", "outcome=ok&cursor=" + url.QueryEscape(flip(first.NextCursor, len(first.NextCursor)-2)), "cursor"},
		{"a cursor cut short", "outcome=ok&cursor=" + url.QueryEscape(first.NextCursor[:len(first.NextCursor)-4]), "cursor"},
		{"a cursor used with other filters", "outcome=timeout&cursor=" + url.QueryEscape(first.NextCursor), "cursor"},
		{"a cursor used without its filters", "cursor=" + url.QueryEscape(first.NextCursor), "cursor"},
	}
	for _, c := range bad {
		t.Run(c.name+" is invalid_request", func(t *testing.T) {
			r := e.do("GET", historyPath+"?"+c.query, e.tenantA, nil, nil)
			expect(t, r, http.StatusBadRequest, "invalid_request")
			if f := r.details()["field"]; f != c.field {
				t.Fatalf("details.field = %v, want %s (%s)", f, c.field, r.body)
			}
		})
	}
	t.Run("the untampered cursor still works", func(t *testing.T) {
		if page := e.executions(e.tenantA, "limit=5&outcome=ok&cursor="+url.QueryEscape(first.NextCursor)); len(page.Executions) == 0 {
			t.Fatal("empty second page")
		}
	})
	t.Run("another tenant's admin is forbidden", func(t *testing.T) {
		for _, p := range []string{historyPath, "/v1/tenants/tenant-a/installs/com.acme.crm/usage"} {
			expect(t, e.do("GET", p, e.tenantB, nil, nil), http.StatusForbidden, "forbidden")
		}
	})
	t.Run("another tenant's cursor does not open this tenant's history", func(t *testing.T) {
		r := e.do("GET", "/v1/tenants/tenant-b/installs/com.acme.crm/executions?limit=5&outcome=ok&cursor="+url.QueryEscape(first.NextCursor), e.tenantB, nil, nil)
		expect(t, r, http.StatusBadRequest, "invalid_request")
	})
	t.Run("each tenant sees only its own records", func(t *testing.T) {
		r := e.do("GET", "/v1/tenants/tenant-b/installs/com.acme.crm/executions", e.tenantB, nil, nil)
		expect(t, r, http.StatusOK, "")
		var page registryapi.ExecutionPage
		r.decode(t, &page)
		if len(page.Executions) != 1 || page.Executions[0].RequestID != "req-b" {
			t.Fatalf("tenant-b history: %+v", page.Executions)
		}
		for _, x := range e.executions(e.tenantA, "limit=500").Executions {
			if x.RequestID == "req-b" {
				t.Fatal("tenant-a sees tenant-b's record")
			}
		}
	})
	t.Run("row-level security backs the predicates of both tables", func(t *testing.T) {
		// The history queries carry tenant predicates; without them, the
		// tenant setting alone still hides tenant-a's rows from tenant-b.
		for _, tbl := range []string{"extension_execution_log", "extension_quota_usage"} {
			for tenant, want := range map[string]bool{"tenant-b": false, "": false, "tenant-a": true} {
				var n int
				err := pgx.BeginFunc(t.Context(), e.db.Pool, func(tx pgx.Tx) error {
					if tenant != "" {
						if _, err := tx.Exec(t.Context(), "SELECT set_config('extedge.tenant', $1, true)", tenant); err != nil {
							return err
						}
					}
					return tx.QueryRow(t.Context(), "SELECT count(*) FROM "+tbl+" WHERE tenant_id = 'tenant-a'").Scan(&n)
				})
				if err != nil || (n > 0) != want {
					t.Fatalf("%s under tenant %q: %d of tenant-a's rows visible (%v)", tbl, tenant, n, err)
				}
			}
		}
	})
	t.Run("a service token may not read history", func(t *testing.T) {
		expect(t, e.do("GET", historyPath, e.service, nil, nil), http.StatusForbidden, "forbidden")
	})
	t.Run("an extension that is not installed is not_installed", func(t *testing.T) {
		expect(t, e.do("GET", "/v1/tenants/tenant-c/installs/com.acme.crm/executions", e.admin, nil, nil), http.StatusNotFound, "not_installed")
		expect(t, e.do("GET", "/v1/tenants/tenant-a/installs/com.acme.none/usage", e.admin, nil, nil), http.StatusNotFound, "not_installed")
	})
}

// TestInstallUsage: the usage API returns the per-minute sums of the
// install's records in [from, to), with totals, tenant by tenant.
func TestInstallUsage(t *testing.T) {
	// 150 records over 75 seconds: minute 10:00 holds i < 120, 10:01 the rest.
	e, base, recs := historyEnv(t, 150)
	usage := func(token, query string) registryapi.UsageReport {
		t.Helper()
		r := e.do("GET", "/v1/tenants/tenant-a/installs/com.acme.crm/usage?"+query, token, nil, nil)
		expect(t, r, http.StatusOK, "")
		var out registryapi.UsageReport
		r.decode(t, &out)
		return out
	}
	sum := func(from, to time.Time) registryapi.UsageMinute {
		m := registryapi.UsageMinute{WindowStart: from}
		for _, r := range recs {
			if !r.StartedAt.Before(from) && r.StartedAt.Before(to) {
				m.Invocations++
				if r.Outcome != "ok" {
					m.Errors++
				}
				m.CPUMS += r.CPUMS
				m.DurationMS += r.DurationMS
				m.EgressBytes += r.EgressBytes
			}
		}
		return m
	}
	q := func(from, to time.Time) string {
		return "from=" + url.QueryEscape(from.Format(time.RFC3339)) + "&to=" + url.QueryEscape(to.Format(time.RFC3339))
	}
	t.Run("the default range is the last hour and holds both minutes", func(t *testing.T) {
		// The env's clock is base + 1h.
		out := usage(e.tenantA, "")
		want := []registryapi.UsageMinute{sum(base, base.Add(time.Minute)), sum(base.Add(time.Minute), base.Add(2*time.Minute))}
		if len(out.Minutes) != 2 || !sameMinute(out.Minutes[0], want[0]) || !sameMinute(out.Minutes[1], want[1]) {
			t.Fatalf("minutes %+v, want %+v", out.Minutes, want)
		}
		if out.Total.Invocations != 150 || out.Total.Errors != 30 || out.Total.EgressBytes != 1500 || out.Total.CPUMS != 225 {
			t.Fatalf("total %+v", out.Total)
		}
		if out.TenantID != "tenant-a" || out.Extension != "com.acme.crm" || !out.To.Equal(base.Add(time.Hour)) || !out.From.Equal(base) {
			t.Fatalf("report %+v", out)
		}
	})
	t.Run("to is exclusive and from is rounded down to its minute", func(t *testing.T) {
		out := usage(e.admin, q(base.Add(30*time.Second), base.Add(time.Minute)))
		if len(out.Minutes) != 1 || !sameMinute(out.Minutes[0], sum(base, base.Add(time.Minute))) || out.Minutes[0].Invocations != 120 || out.Minutes[0].Errors != 24 {
			t.Fatalf("minutes %+v", out.Minutes)
		}
	})
	t.Run("a range without calls is empty, not null", func(t *testing.T) {
		out := usage(e.tenantA, q(base.Add(-time.Hour), base))
		if out.Minutes == nil || len(out.Minutes) != 0 || out.Total.Invocations != 0 {
			t.Fatalf("report %+v", out)
		}
	})
	t.Run("another tenant's usage stays its own", func(t *testing.T) {
		r := e.do("GET", "/v1/tenants/tenant-b/installs/com.acme.crm/usage?"+q(base, base.Add(time.Hour)), e.tenantB, nil, nil)
		expect(t, r, http.StatusOK, "")
		var out registryapi.UsageReport
		r.decode(t, &out)
		if len(out.Minutes) != 1 || out.Total.Invocations != 1 || out.Total.EgressBytes != 7 {
			t.Fatalf("tenant-b usage %+v", out)
		}
	})
	for _, c := range []struct{ name, query, field string }{
		{"from not RFC 3339", "from=1h", "from"},
		{"to before from", q(base.Add(time.Hour), base), "to"},
		{"a range over 31 days", q(base.Add(-32*24*time.Hour), base), "from"},
	} {
		t.Run(c.name+" is invalid_request", func(t *testing.T) {
			r := e.do("GET", "/v1/tenants/tenant-a/installs/com.acme.crm/usage?"+c.query, e.tenantA, nil, nil)
			expect(t, r, http.StatusBadRequest, "invalid_request")
			if f := r.details()["field"]; f != c.field {
				t.Fatalf("details.field = %v, want %s", f, c.field)
			}
		})
	}
}

func sameMinute(a, b registryapi.UsageMinute) bool {
	wa, wb := a.WindowStart, b.WindowStart
	a.WindowStart, b.WindowStart = time.Time{}, time.Time{}
	return wa.Equal(wb) && a == b
}
