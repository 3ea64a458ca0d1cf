package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/extedge/extedge/internal/registryapi"
)

// platformFlags are the install fields only a platform admin may change
// (SPEC §7.3, §7.7, §6.5): quotas and instance reuse. The registry replaces
// each of them as a whole, so extctl starts from the install's current
// value and changes only what was given: --quota-concurrent-calls 5 keeps
// an invocations-per-minute quota already set. A tenant admin who gives
// any of them gets the registry's forbidden error.
type platformFlags struct {
	invocations, concurrent, cpuMS optInt
	reuse                          optSwitch
	reuseMaxCalls                  optInt
	reuseMaxAge                    optDuration
}

func addPlatformFlags(fs *flagSet) *platformFlags {
	f := new(platformFlags)
	fs.Var(&f.invocations, "quota-invocations-per-minute", "platform admin: at most `N` calls per minute (0 removes the limit)")
	fs.Var(&f.concurrent, "quota-concurrent-calls", "platform admin: at most `N` calls at once (0 removes the limit)")
	fs.Var(&f.cpuMS, "quota-cpu-ms-per-minute", "platform admin: at most `N` guest CPU milliseconds per minute (0 removes the limit)")
	fs.Var(&f.reuse, "instance-reuse", "platform admin: `on|off`; on lets one instance serve many calls of this install, off gives each call a fresh one")
	fs.Var(&f.reuseMaxCalls, "reuse-max-calls", "platform admin: recycle a reused instance after `N` calls (0 means 1000)")
	fs.Var(&f.reuseMaxAge, "reuse-max-age", "platform admin: recycle a reused instance after `DURATION` (0 means 60s)")
	return f
}

// given reports whether any platform field was given.
func (f *platformFlags) given() bool {
	return f.quotasGiven() || f.reuseGiven()
}

func (f *platformFlags) quotasGiven() bool {
	return f.invocations.set || f.concurrent.set || f.cpuMS.set
}

func (f *platformFlags) reuseGiven() bool {
	return f.reuse.set || f.reuseMaxCalls.set || f.reuseMaxAge.set
}

// check refuses bad values before anything is sent.
func (f *platformFlags) check() error {
	for _, q := range []struct {
		name string
		v    optInt
	}{
		{"quota-invocations-per-minute", f.invocations}, {"quota-concurrent-calls", f.concurrent},
		{"quota-cpu-ms-per-minute", f.cpuMS}, {"reuse-max-calls", f.reuseMaxCalls},
	} {
		if q.v.set && q.v.v < 0 {
			return usageError{fmt.Sprintf("--%s must not be negative", q.name)}
		}
	}
	if f.reuseMaxAge.set && (f.reuseMaxAge.v < 0 || f.reuseMaxAge.v%time.Millisecond != 0) {
		return usageError{"--reuse-max-age must be a non-negative whole number of milliseconds"}
	}
	if f.reuse.set && !f.reuse.on && (f.reuseMaxCalls.set || f.reuseMaxAge.set) {
		return usageError{"--reuse-max-calls and --reuse-max-age need --instance-reuse on, not off"}
	}
	return nil
}

// apply sets the request's quotas and instance_reuse from cur (the
// install's current values; nil for a new install) and the flags given.
func (f *platformFlags) apply(req *registryapi.InstallRequest, cur *registryapi.Install) error {
	if f.quotasGiven() {
		q := registryapi.Quotas{}
		if cur != nil && cur.Quotas != nil {
			q = *cur.Quotas
		}
		f.invocations.into(&q.InvocationsPerMinute)
		f.concurrent.into(&q.ConcurrentCalls)
		f.cpuMS.into(&q.CPUMsPerMinute)
		req.Quotas = &q
	}
	if f.reuseGiven() {
		var r registryapi.InstanceReuse
		if cur != nil {
			r = cur.InstanceReuse.Normalized()
		}
		if f.reuse.set {
			if !f.reuse.on {
				req.InstanceReuse = &registryapi.InstanceReuse{}
				return nil
			}
			r.Enabled = true
		}
		if !r.Enabled {
			return usageError{"--reuse-max-calls and --reuse-max-age need --instance-reuse on (reuse is off for this install)"}
		}
		f.reuseMaxCalls.into(&r.MaxCalls)
		if f.reuseMaxAge.set {
			r.MaxAgeMS = f.reuseMaxAge.v.Milliseconds()
		}
		req.InstanceReuse = &r
	}
	return nil
}

// currentInstall returns tenant's install of ext, or nil when there is
// none (not_installed).
func currentInstall(s *session, tenant, ext string) (*registryapi.Install, error) {
	cur, err := s.client.GetInstall(s.ctx, tenant, ext)
	var ae *registryapi.APIError
	if errors.As(err, &ae) && ae.Status == 404 {
		return nil, nil
	}
	return cur, err
}

// formatQuotas renders quotas as "N calls/min, N concurrent, N CPU ms/min".
func formatQuotas(q *registryapi.Quotas) string {
	if q.IsZero() {
		return "(none)"
	}
	var parts []string
	if q.InvocationsPerMinute > 0 {
		parts = append(parts, fmt.Sprintf("%d calls/min", q.InvocationsPerMinute))
	}
	if q.ConcurrentCalls > 0 {
		parts = append(parts, fmt.Sprintf("%d concurrent", q.ConcurrentCalls))
	}
	if q.CPUMsPerMinute > 0 {
		parts = append(parts, fmt.Sprintf("%d CPU ms/min", q.CPUMsPerMinute))
	}
	return strings.Join(parts, ", ")
}

// formatReuse renders an instance_reuse setting, defaults spelled out.
func formatReuse(r *registryapi.InstanceReuse) string {
	n := r.Normalized()
	if !n.Enabled {
		return "off"
	}
	calls, age := n.MaxCalls, n.MaxAgeMS
	if calls == 0 {
		calls = registryapi.DefaultReuseMaxCalls
	}
	if age == 0 {
		age = registryapi.DefaultReuseMaxAgeMS
	}
	return fmt.Sprintf("on (max %d calls, max age %s)", calls, time.Duration(age)*time.Millisecond)
}

// optInt is an int flag that remembers whether it was given.
type optInt struct {
	v   int
	set bool
}

func (o *optInt) String() string {
	if o == nil || !o.set {
		return ""
	}
	return strconv.Itoa(o.v)
}

func (o *optInt) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("not an integer")
	}
	o.v, o.set = n, true
	return nil
}

func (o optInt) into(dst *int) {
	if o.set {
		*dst = o.v
	}
}

// optSwitch is an on/off flag that remembers whether it was given.
type optSwitch struct{ on, set bool }

func (o *optSwitch) String() string {
	if o == nil || !o.set {
		return ""
	}
	if o.on {
		return "on"
	}
	return "off"
}

func (o *optSwitch) Set(s string) error {
	switch strings.ToLower(s) {
	case "on", "true", "yes":
		o.on = true
	case "off", "false", "no":
		o.on = false
	default:
		return errors.New("want on or off")
	}
	o.set = true
	return nil
}

// optDuration is a duration flag that remembers whether it was given.
type optDuration struct {
	v   time.Duration
	set bool
}

func (o *optDuration) String() string {
	if o == nil || !o.set {
		return ""
	}
	return o.v.String()
}

func (o *optDuration) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("not a duration (e.g. 30s, 5m)")
	}
	o.v, o.set = d, true
	return nil
}
