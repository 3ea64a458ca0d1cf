//go:build !linux

package engine

import "time"

// onThread runs f on the calling goroutine: CPU time and demotion need
// Linux's per-thread clocks and priorities.
func onThread(_ time.Duration, _ bool, _ time.Duration, f func()) (time.Duration, bool) {
	f()
	return 0, false
}
