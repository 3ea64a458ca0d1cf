// Package log is the always-granted logging capability (SPEC §5.2):
// log_info, log_warn and log_error take UTF-8 text, and WASI stdout and
// stderr arrive here line by line from the engine. The unit keeps the
// call's lines within the per-line and per-invocation byte caps and
// reports them, which the runner writes to its own log and to the debug
// stream.
package log

import (
	"time"

	"github.com/extedge/extedge/runnerd/hostapi"
)

// Capability provides the log_* imports and takes WASI stdio.
type Capability struct{}

// Capability implements hostapi.Unit.
func (Capability) Capability() string { return "log.emit" }

// Imports implements hostapi.Unit.
func (Capability) Imports() []hostapi.Import {
	return []hostapi.Import{
		{Name: "log_info", Text: hostapi.TextFunc(logAt("info"))},
		{Name: "log_warn", Text: hostapi.TextFunc(logAt("warn"))},
		{Name: "log_error", Text: hostapi.TextFunc(logAt("error"))},
	}
}

// callLog is the unit's state of one call: the lines kept so far and the
// byte budgets.
type callLog struct {
	budgets hostapi.Budgets
	lines   []hostapi.LogLine
	bytes   int
	dropped int
}

// Prepare implements hostapi.Unit.
func (Capability) Prepare(call hostapi.CallInfo) (hostapi.State, error) {
	return &callLog{budgets: call.Budgets.WithDefaults()}, nil
}

// Finish implements hostapi.Unit.
func (Capability) Finish(st hostapi.State, r *hostapi.Report) {
	l := st.(*callLog)
	r.Logs = append(r.Logs, l.lines...)
	r.LogBytes += l.bytes
	r.LogsDropped += l.dropped
}

// Stdio implements hostapi.StdioUnit: stdout lines are info, stderr lines
// warnings.
func (Capability) Stdio(st hostapi.State, stream string, line []byte) bool {
	level := "info"
	if stream == "stderr" {
		level = "warn"
	}
	return st.(*callLog).add(level, stream, line)
}

func logAt(level string) func(*callLog, []byte) {
	return func(l *callLog, text []byte) { l.add(level, "log", text) }
}

// add records a log line within the byte budgets: the message is cut at a
// UTF-8 boundary to the per-line cap and to what is left of the
// per-invocation cap. It reports whether anything was kept.
func (l *callLog) add(level, stream string, msg []byte) bool {
	left := l.budgets.MaxLogBytes - l.bytes
	if left <= 0 {
		l.dropped += len(msg)
		return false
	}
	limit := min(l.budgets.MaxLogLineBytes, left)
	text, truncated := hostapi.CutUTF8(msg, limit)
	if truncated {
		l.dropped += len(msg) - len(text)
	}
	l.bytes += len(text)
	l.lines = append(l.lines, hostapi.LogLine{Time: time.Now(), Level: level, Stream: stream, Message: string(text), Truncated: truncated})
	return true
}

var _ hostapi.StdioUnit = Capability{}
