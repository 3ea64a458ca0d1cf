package caddymodule

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/extedge/extedge/caddymodule/breaker"
	"github.com/extedge/extedge/caddymodule/runnerpool"
	"github.com/extedge/extedge/internal/execapi"
)

// maxBreakerKeys bounds the installs with a circuit (only installs that
// failed get one).
const maxBreakerKeys = 100_000

// breakerCall is one call's part in its install's circuit breaker.
type breakerCall struct {
	admitted bool
	ticket   breaker.Ticket
	outcome  breaker.Outcome // set by execute; Neutral if it never ran
}

func (h *Handler) breakerPolicy() breaker.Policy {
	return breaker.Policy{Failures: h.BreakerFailures, Cooldown: time.Duration(h.BreakerCooldown)}
}

// checkBreaker refuses the call while its install's breaker is open or
// its probe is in flight (SPEC §17). It runs after the endpoint matched
// and before install quotas, so refused calls cost no quota.
func (c *apiCall) checkBreaker() *gatewayError {
	t, retry, ok := c.h.state.breakers.Allow(c.inst.InstallID, c.h.breakerPolicy(), c.h.now())
	if !ok {
		breakerEvents.WithLabelValues("rejected").Inc()
		ge := newError(codeExtensionUnhealthy, "")
		ge.retryAfter = max(retry, time.Second)
		return ge
	}
	if t.Probe() {
		if ce := c.h.logger.Check(zapcore.InfoLevel, "circuit breaker probe"); ce != nil {
			ce.Write(zap.String("request_id", c.rid), zap.String("install_id", c.inst.InstallID), zap.String("extension", c.ext))
		}
	}
	c.breaker = breakerCall{admitted: true, ticket: t}
	return nil
}

// settleBreaker records the outcome of a call checkBreaker admitted.
func (c *apiCall) settleBreaker() {
	if !c.breaker.admitted {
		return
	}
	p := c.h.breakerPolicy()
	if c.h.state.breakers.Record(c.inst.InstallID, c.breaker.ticket, c.breaker.outcome, p, c.h.now()) {
		breakerEvents.WithLabelValues("opened").Inc()
		c.h.logger.Warn("circuit breaker opened", zap.String("install_id", c.inst.InstallID),
			zap.String("extension", c.ext), zap.String("tenant", c.tenant()),
			zap.Bool("after_probe", c.breaker.ticket.Probe()), zap.Duration("cooldown", p.Cooldown))
	}
}

// breakerOutcome is what a runner call says about the install's health.
// Failed: the guest timed out or trapped — the runner's timeout, trap,
// memory_limit and fuel_exhausted, or the gateway's own deadline (504
// timeout) when the runner did not answer in time. Good: the guest ran to
// an end — any guest response, 5xx included (the guest chose it and
// returned in time), handler_error, and a response over
// max_response_body. Neutral: the rest says nothing about the guest —
// refusals before it ran (concurrency_limited, the tenant cap, payload
// limits, bundle fetch or verification, an invalid module), runner or
// transport failures, and the client going away.
func breakerOutcome(res *runnerpool.Result, err error) breaker.Outcome {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return breaker.Failed
	case errors.Is(err, runnerpool.ErrResponseTooLarge):
		return breaker.Good
	case err != nil:
		return breaker.Neutral
	case res.Err == nil:
		return breaker.Good
	}
	switch res.Err.Code {
	case execapi.CodeTimeout, execapi.CodeTrap, execapi.CodeMemoryLimit, execapi.CodeFuelExhausted:
		return breaker.Failed
	case execapi.CodeHandlerError:
		return breaker.Good
	}
	return breaker.Neutral
}
