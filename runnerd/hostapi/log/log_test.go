package log

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/extedge/extedge/internal/execapi"
	"github.com/extedge/extedge/runnerd/hostapi"
)

func TestLogBudgets(t *testing.T) {
	set, err := hostapi.NewSet(Capability{})
	if err != nil {
		t.Fatal(err)
	}
	info := set.Imports()[0]
	if info.Name != "log_error" {
		info = set.Imports()[1]
	}
	// log.emit is always granted: no capabilities in the envelope.
	inv := hostapi.NewInvocation(context.Background(), &execapi.Request{}, hostapi.Budgets{MaxLogBytes: 100, MaxLogLineBytes: 40})
	set.CallText(inv, &info, []byte(strings.Repeat("a", 30)))
	set.CallText(inv, &info, []byte(strings.Repeat("é", 30)))       // 60 bytes, cut to 40 at a rune boundary
	if !set.Stdio(inv, "stderr", []byte(strings.Repeat("b", 50))) { // 30 left
		t.Fatal("stdio line refused with budget left")
	}
	if set.Stdio(inv, "stdout", []byte("dropped")) {
		t.Fatal("stdio line kept after the budget was spent")
	}
	r := inv.Finish()
	if len(r.Logs) != 3 || r.LogBytes != 100 {
		t.Fatalf("%d lines, %d bytes", len(r.Logs), r.LogBytes)
	}
	if l := r.Logs[1]; !l.Truncated || len(l.Message) != 40 || !utf8.ValidString(l.Message) {
		t.Fatalf("line cut badly: %q", l.Message)
	}
	if l := r.Logs[2]; l.Stream != "stderr" || l.Level != "warn" || !l.Truncated {
		t.Fatalf("stderr line %+v", l)
	}
	if r.LogsDropped != 20+20+7 {
		t.Fatalf("dropped %d", r.LogsDropped)
	}
}
