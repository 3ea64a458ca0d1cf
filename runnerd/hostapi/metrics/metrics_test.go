package metrics

import (
	"context"
	"testing"

	"github.com/extedge/extedge/internal/execapi"
	"github.com/extedge/extedge/runnerd/hostapi"
)

func TestEmit(t *testing.T) {
	set, _ := hostapi.NewSet(Capability{})
	// metrics.emit is always granted: no capabilities in the envelope.
	inv := hostapi.NewInvocation(context.Background(), &execapi.Request{}, hostapi.Budgets{})
	b := set.Imports()[0]
	for _, tt := range []struct {
		name, req string
		ok        bool
	}{
		{"counter sample is recorded", `{"name":"syncs","value":1,"kind":"counter","labels":{"result":"ok"}}`, true},
		{"gauge sample is recorded", `{"name":"queue","value":-3,"kind":"gauge"}`, true},
		{"unknown kind is refused", `{"name":"x","value":1,"kind":"summary"}`, false},
		{"negative counter is refused", `{"name":"x","value":-1,"kind":"counter"}`, false},
		{"missing name is refused", `{"value":1,"kind":"gauge"}`, false},
		{"the runner's extension label is refused", `{"name":"x","value":1,"kind":"gauge","labels":{"extension":"com.other.x"}}`, false},
		{"too many labels are refused", `{"name":"x","value":1,"kind":"gauge","labels":{"a":"","b":"","c":"","d":"","e":"","f":"","g":"","h":"","i":""}}`, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, st := set.CallJSON(inv, &b, []byte(tt.req))
			if (st == 0) != tt.ok {
				t.Fatalf("status %d, want ok=%v", st, tt.ok)
			}
		})
	}
	if r := inv.Finish(); len(r.Metrics) != 2 {
		t.Fatalf("reported %d samples, want 2", len(r.Metrics))
	}
}
