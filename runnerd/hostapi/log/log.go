// Package log is the always-granted logging capability (SPEC §5.2):
// log_info, log_warn and log_error take UTF-8 text and add it to the
// invocation's log lines, which the runner writes to its own log and to the
// debug stream. Byte caps per line and per invocation are applied by
// [hostapi.Invocation.AddLog].
package log

import "github.com/extedge/extedge/runnerd/hostapi"

// Capability provides the log_* imports.
type Capability struct{}

// Capability implements hostapi.Capability.
func (Capability) Capability() string { return "log.emit" }

// Imports implements hostapi.Capability.
func (Capability) Imports() []hostapi.Import {
	return []hostapi.Import{
		{Name: "log_info", Text: logAt("info")},
		{Name: "log_warn", Text: logAt("warn")},
		{Name: "log_error", Text: logAt("error")},
	}
}

func logAt(level string) func(*hostapi.Invocation, []byte) {
	return func(inv *hostapi.Invocation, text []byte) {
		inv.AddLog(level, "log", text)
	}
}

var _ hostapi.Capability = Capability{}
