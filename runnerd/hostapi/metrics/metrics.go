// Package metrics is the always-granted metrics.emit capability (SPEC
// §5.2): the guest reports `{name, value, kind, labels?}` samples, which
// the runner exports to Prometheus under the extedge_guest_ prefix with an
// extension label and caps on names and label cardinality (runnerd/server). This unit only
// validates the samples of a call and reports them when it finishes.
package metrics

import (
	"context"
	"math"

	"github.com/extedge/extedge/runnerd/hostapi"
)

// MaxSamplesPerCall bounds metrics.emit samples kept per invocation.
const MaxSamplesPerCall = 100

// Capability provides metrics.emit.
type Capability struct{}

// Capability implements hostapi.Unit.
func (Capability) Capability() string { return "metrics.emit" }

// Imports implements hostapi.Unit.
func (Capability) Imports() []hostapi.Import {
	return []hostapi.Import{{Name: "metrics.emit", JSON: hostapi.JSONFunc(emit)}}
}

// samples is the unit's state of one call.
type samples struct{ list []hostapi.Metric }

// Prepare implements hostapi.Unit.
func (Capability) Prepare(hostapi.CallInfo) (hostapi.State, error) { return &samples{}, nil }

// Finish implements hostapi.Unit.
func (Capability) Finish(st hostapi.State, r *hostapi.Report) {
	r.Metrics = append(r.Metrics, st.(*samples).list...)
}

func emit(_ context.Context, s *samples, raw []byte) (any, error) {
	var req struct {
		Name   string            `json:"name"`
		Value  float64           `json:"value"`
		Kind   string            `json:"kind"`
		Labels map[string]string `json:"labels,omitempty"`
	}
	if err := hostapi.DecodeRequest(raw, &req); err != nil {
		return nil, err
	}
	switch {
	case req.Name == "" || len(req.Name) > 100:
		return nil, hostapi.Errorf(hostapi.CodeInvalidRequest, "name must be 1-100 characters")
	case req.Kind != "counter" && req.Kind != "gauge" && req.Kind != "histogram":
		return nil, hostapi.Errorf(hostapi.CodeInvalidRequest, "kind must be counter, gauge or histogram")
	case math.IsNaN(req.Value) || math.IsInf(req.Value, 0):
		return nil, hostapi.Errorf(hostapi.CodeInvalidRequest, "value must be finite")
	case req.Kind == "counter" && req.Value < 0:
		return nil, hostapi.Errorf(hostapi.CodeInvalidRequest, "counter increments must not be negative")
	case len(req.Labels) > 8:
		return nil, hostapi.Errorf(hostapi.CodeInvalidRequest, "at most 8 labels")
	}
	for k, v := range req.Labels {
		if len(k) > 100 || len(v) > 128 {
			return nil, hostapi.Errorf(hostapi.CodeInvalidRequest, "label names are at most 100 and values 128 characters")
		}
		if k == hostapi.MetricExtensionLabel {
			return nil, hostapi.Errorf(hostapi.CodeInvalidRequest, "label %q is set by the runner", k)
		}
	}
	if len(s.list) >= MaxSamplesPerCall {
		return nil, hostapi.Errorf(hostapi.CodeLimitExceeded, "more than %d metric samples in one invocation", MaxSamplesPerCall)
	}
	s.list = append(s.list, hostapi.Metric{Name: req.Name, Kind: req.Kind, Value: req.Value, Labels: req.Labels})
	return struct{}{}, nil
}

var _ hostapi.Unit = Capability{}
