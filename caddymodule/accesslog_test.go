package caddymodule

import (
	"net/http/httptest"
	"testing"
)

func TestAccessFields(t *testing.T) {
	cases := []struct {
		name string
		in   accessFields
		want []string // key=value
	}{
		{"every SPEC §21 field in order", accessFields{"rid-1", "tenant-a", "com.acme.crm", "ok"},
			[]string{"request_id=rid-1", "tenant=tenant-a", "extension=com.acme.crm", "outcome=ok"}},
		{"empty fields are left out", accessFields{requestID: "rid-2", outcome: codeUnauthenticated},
			[]string{"request_id=rid-2", "outcome=unauthenticated"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := c.in.zapFields()
			if len(got) != len(c.want) {
				t.Fatalf("got %d fields, want %v", len(got), c.want)
			}
			for i, f := range got {
				if kv := f.Key + "=" + f.String; kv != c.want[i] {
					t.Fatalf("field %d = %s, want %s", i, kv, c.want[i])
				}
			}
		})
	}
	// Outside Caddy's server there is no access log entry; record is a no-op.
	accessFields{requestID: "x"}.record(httptest.NewRequest("GET", "/api/ext/com.acme.crm/x", nil))
}

func TestParsePathNamesOnlyValidExtensions(t *testing.T) {
	cases := []struct{ name, path, ext, sub string }{
		{"a valid extension id is logged", "/api/ext/com.acme.crm/agreements", "com.acme.crm", "/agreements"},
		{"an extension id without a sub-path", "/api/ext/com.acme.crm", "com.acme.crm", "/"},
		{"an invalid extension id is not logged", "/api/ext/Not%20Valid/x", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			call := &apiCall{r: httptest.NewRequest("GET", c.path, nil)}
			ge := call.parsePath()
			if call.ext != c.ext || call.sub != c.sub {
				t.Fatalf("parsePath(%s): ext %q sub %q, want %q %q", c.path, call.ext, call.sub, c.ext, c.sub)
			}
			if (ge != nil) != (c.ext == "") {
				t.Fatalf("parsePath(%s) error = %v", c.path, ge)
			}
		})
	}
}
