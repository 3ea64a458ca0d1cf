package caddymodule

import (
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("extedge", parseCaddyfile)
	// Before reverse_proxy, so `extedge` and `reverse_proxy psa-app:3000`
	// in one site block serve extension routes here and the rest upstream.
	httpcaddyfile.RegisterDirectiveOrder("extedge", httpcaddyfile.Before, "reverse_proxy")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	eh := new(Handler)
	if err := eh.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	return eh, nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	extedge [<matcher>] {
//	    registry <url> {
//	        token_file <file>
//	        ca_file    <file>
//	        cache_ttl  <duration>
//	        max_stale  <duration>
//	    }
//	    runners <address...> {
//	        token_file      <file>
//	        ca_file         <file>
//	        health_interval <duration>
//	        fail_duration   <duration>
//	    }
//	    auth jwt {
//	        key_file | secret_file | jwks_url <value>
//	        issuer       <iss>
//	        audience     <aud>
//	        tenant_claim <claim>
//	        cookie       <name>
//	        require_permissions
//	    }
//	    auth trusted_header [<header>] {
//	        secret_header <name> <file>
//	    }
//	    bundle_store      <url>
//	    trust_bundle      <file>
//	    ui_cache          <dir> [<size>]
//	    timeout           <duration>
//	    max_request_body  <size>
//	    max_response_body <size>
//	    rate_limit {
//	        per_tenant    <N>r/s|r/m|r/h [burst <M>]
//	        per_extension <N>r/s|r/m|r/h [burst <M>]
//	        redis         <url>
//	        max_keys      <n>
//	    }
//	    cors_origins    <origin...>
//	    frame_ancestors <origin...>
//	    content_security_policy <policy>
//	    gateway_origin  <origin>
//	    ui_host         <host>
//	    ui_rate_limit   <N>r/s|r/m|r/h [burst <M>]
//	    ui_max_lookups  <n>
//	    tenant_concurrency <n>
//	    tenant_queue       <n>|off
//	    tenant_queue_wait  <duration>
//	    tenant_cost_bytes  <size>|off
//	    refusal_delay      <duration>|off
//	    refusal_max_parked <n>
//	    breaker_failures   <n>|off
//	    breaker_cooldown   <duration>
//	}
//
// Settings inside a block are keyword-driven, so several may share a line
// (`per_tenant 200r/s burst 400 per_extension 50r/s burst 100`). Sizes
// take units, with or without a space (`10MiB`, `10MB`, `10 MB`, `2 GiB`).
// Runner addresses need a scheme for Unix sockets (`unix//run/r.sock`).
// Unknown subdirectives are errors.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "registry":
			if err := h.parseRegistry(d); err != nil {
				return err
			}
		case "runners":
			if err := h.parseRunners(d); err != nil {
				return err
			}
		case "auth":
			if err := h.parseAuth(d); err != nil {
				return err
			}
		case "bundle_store":
			if err := oneArg(d, &h.BundleStore); err != nil {
				return err
			}
		case "trust_bundle":
			if err := oneArg(d, &h.TrustBundle); err != nil {
				return err
			}
		case "ui_cache":
			h.UICache = new(UICacheConfig)
			if err := oneArg(d, &h.UICache.Dir); err != nil {
				return err
			}
			if d.NextArg() {
				d.Prev()
				if err := namedSizeArg(d, "ui_cache", &h.UICache.MaxSize); err != nil {
					return err
				}
			}
			if d.NextArg() {
				return d.ArgErr()
			}
		case "timeout":
			if err := durationArg(d, &h.Timeout); err != nil {
				return err
			}
		case "max_request_body":
			if err := sizeArg(d, &h.MaxRequestBody); err != nil {
				return err
			}
		case "max_response_body":
			if err := sizeArg(d, &h.MaxResponseBody); err != nil {
				return err
			}
		case "rate_limit":
			if err := h.parseRateLimit(d); err != nil {
				return err
			}
		case "cors_origins":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			h.CORSOrigins = append(h.CORSOrigins, args...)
		case "frame_ancestors":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			h.FrameAncestors = append(h.FrameAncestors, args...)
		case "content_security_policy":
			if err := oneArg(d, &h.ContentSecurityPolicy); err != nil {
				return err
			}
		case "gateway_origin":
			if err := oneArg(d, &h.GatewayOrigin); err != nil {
				return err
			}
		case "ui_host":
			if err := oneArg(d, &h.UIHost); err != nil {
				return err
			}
		case "ui_rate_limit":
			spec, err := parseRateSpec(d)
			if err != nil {
				return err
			}
			if d.NextArg() {
				return d.ArgErr()
			}
			h.UIRateLimit = spec
		case "ui_max_lookups":
			if err := positiveIntArg(d, &h.UIMaxLookups); err != nil {
				return err
			}
		case "tenant_concurrency":
			if err := positiveIntArg(d, &h.TenantConcurrency); err != nil {
				return err
			}
		case "tenant_queue":
			if off, err := offArg(d); err != nil {
				return err
			} else if off {
				h.TenantQueue = -1 // the JSON's "refuse at once"
				break
			}
			if err := positiveIntArg(d, &h.TenantQueue); err != nil {
				return err
			}
		case "tenant_queue_wait":
			if err := durationArg(d, &h.TenantQueueWait); err != nil {
				return err
			}
			if h.TenantQueueWait <= 0 {
				return d.Errf("tenant_queue_wait: want a positive duration, got '%s'", d.Val())
			}
		case "tenant_cost_bytes":
			if off, err := offArg(d); err != nil {
				return err
			} else if off {
				h.TenantCostBytes = -1 // the JSON's "every call weighs 1"
				break
			}
			if err := sizeArg(d, &h.TenantCostBytes); err != nil {
				return err
			}
		case "refusal_delay":
			if off, err := offArg(d); err != nil {
				return err
			} else if off {
				h.RefusalDelay = -1 // the JSON's "answer at once"
				break
			}
			if err := durationArg(d, &h.RefusalDelay); err != nil {
				return err
			}
			if h.RefusalDelay <= 0 {
				return d.Errf("refusal_delay: want a positive duration or off, got '%s'", d.Val())
			}
		case "refusal_max_parked":
			if err := positiveIntArg(d, &h.RefusalMaxParked); err != nil {
				return err
			}
		case "breaker_failures":
			if off, err := offArg(d); err != nil {
				return err
			} else if off {
				h.BreakerFailures = -1 // the JSON's "disabled"
				break
			}
			if err := positiveIntArg(d, &h.BreakerFailures); err != nil {
				return err
			}
		case "breaker_cooldown":
			if err := durationArg(d, &h.BreakerCooldown); err != nil {
				return err
			}
			if h.BreakerCooldown <= 0 {
				return d.Errf("breaker_cooldown: want a positive duration, got '%s'", d.Val())
			}
		default:
			return d.Errf("unrecognized extedge subdirective '%s'", d.Val())
		}
	}
	return nil
}

func (h *Handler) parseRegistry(d *caddyfile.Dispenser) error {
	h.Registry = new(RegistryConfig)
	if err := oneArg(d, &h.Registry.URL); err != nil {
		return err
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "token_file":
			err = oneArg(d, &h.Registry.TokenFile)
		case "ca_file":
			err = oneArg(d, &h.Registry.CAFile)
		case "cache_ttl":
			err = durationArg(d, &h.Registry.CacheTTL)
		case "max_stale":
			err = durationArg(d, &h.Registry.MaxStale)
		default:
			return d.Errf("unrecognized registry option '%s'", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (h *Handler) parseRunners(d *caddyfile.Dispenser) error {
	h.Runners = new(RunnersConfig)
	for d.NextArg() {
		if err := checkRunnerAddress(d.Val()); err != nil {
			return d.Errf("%v", err)
		}
		h.Runners.Addresses = append(h.Runners.Addresses, d.Val())
	}
	if len(h.Runners.Addresses) == 0 {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "token_file":
			err = oneArg(d, &h.Runners.TokenFile)
		case "ca_file":
			err = oneArg(d, &h.Runners.CAFile)
		case "health_interval":
			err = durationArg(d, &h.Runners.HealthInterval)
		case "fail_duration":
			err = durationArg(d, &h.Runners.FailDuration)
		default:
			return d.Errf("unrecognized runners option '%s'", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (h *Handler) parseAuth(d *caddyfile.Dispenser) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	h.Auth = &AuthConfig{Mode: d.Val()}
	switch h.Auth.Mode {
	case "trusted_header":
		if d.NextArg() {
			h.Auth.Header = d.Val()
		}
		if d.NextArg() {
			return d.ArgErr()
		}
		for nesting := d.Nesting(); d.NextBlock(nesting); {
			if d.Val() != "secret_header" {
				return d.Errf("unrecognized auth trusted_header option '%s'", d.Val())
			}
			if !d.Args(&h.Auth.SecretHeader, &h.Auth.SecretHeaderFile) || d.NextArg() {
				return d.Errf("secret_header wants a header name and a file")
			}
		}
		return nil
	case "jwt":
	default:
		return d.Errf("unknown auth mode '%s' (want jwt or trusted_header)", h.Auth.Mode)
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	a := h.Auth
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "key_file":
			err = oneArg(d, &a.KeyFile)
		case "secret_file":
			err = oneArg(d, &a.SecretFile)
		case "jwks_url":
			err = oneArg(d, &a.JWKSURL)
		case "issuer":
			err = oneArg(d, &a.Issuer)
		case "audience":
			err = oneArg(d, &a.Audience)
		case "tenant_claim":
			err = oneArg(d, &a.TenantClaim)
		case "cookie":
			err = oneArg(d, &a.Cookie)
		case "require_permissions":
			a.RequirePermissions = true
		default:
			return d.Errf("unrecognized auth jwt option '%s'", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (h *Handler) parseRateLimit(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	h.RateLimit = new(RateLimitConfig)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "per_tenant", "per_extension":
			which := d.Val()
			spec, err := parseRateSpec(d)
			if err != nil {
				return err
			}
			if which == "per_tenant" {
				h.RateLimit.PerTenant = spec
			} else {
				h.RateLimit.PerExtension = spec
			}
		case "redis":
			if err := oneArg(d, &h.RateLimit.Redis); err != nil {
				return err
			}
		case "max_keys":
			if err := positiveIntArg(d, &h.RateLimit.MaxKeys); err != nil {
				return err
			}
		default:
			return d.Errf("unrecognized rate_limit option '%s'", d.Val())
		}
	}
	return nil
}

// parseRateSpec reads `<N>r/s [burst <M>]` after the current token,
// leaving any following keyword on the line for the block loop.
func parseRateSpec(d *caddyfile.Dispenser) (*RateSpec, error) {
	if !d.NextArg() {
		return nil, d.ArgErr()
	}
	spec, err := parseRate(d.Val())
	if err != nil {
		return nil, d.Errf("%v", err)
	}
	if d.NextArg() {
		if d.Val() != "burst" {
			d.Prev()
			return spec, nil
		}
		if err := positiveIntArg(d, &spec.Burst); err != nil {
			return nil, err
		}
	}
	return spec, nil
}

// parseRate parses "200r/s", "50r/m", "10r/h".
func parseRate(s string) (*RateSpec, error) {
	num, unit, ok := strings.Cut(s, "r/")
	n, err := strconv.Atoi(num)
	if !ok || err != nil || n <= 0 {
		return nil, errRate(s)
	}
	var per time.Duration
	switch unit {
	case "s":
		per = time.Second
	case "m":
		per = time.Minute
	case "h":
		per = time.Hour
	default:
		return nil, errRate(s)
	}
	return &RateSpec{Requests: n, Per: caddy.Duration(per)}, nil
}

type errRate string

func (e errRate) Error() string {
	return "invalid rate '" + string(e) + "': want <N>r/s, <N>r/m or <N>r/h"
}

func oneArg(d *caddyfile.Dispenser, dst *string) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	*dst = d.Val()
	return nil
}

// positiveIntArg reads the argument of the option d is at as a positive
// integer.
func positiveIntArg(d *caddyfile.Dispenser, dst *int) error {
	name := d.Val()
	if !d.NextArg() {
		return d.ArgErr()
	}
	n, err := strconv.Atoi(d.Val())
	if err != nil || n <= 0 {
		return d.Errf("%s: want a positive integer, got '%s'", name, d.Val())
	}
	*dst = n
	return nil
}

// durationArg reads the argument of the option d is at as a duration;
// a negative one is an error.
func durationArg(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	name := d.Val()
	if !d.NextArg() {
		return d.ArgErr()
	}
	dur, err := caddy.ParseDuration(d.Val())
	if err != nil {
		return d.Errf("%s: invalid duration '%s': %v", name, d.Val(), err)
	}
	if dur < 0 {
		return d.Errf("%s: duration must not be negative, got '%s'", name, d.Val())
	}
	*dst = caddy.Duration(dur)
	return nil
}

// offArg reports whether the option d is at is set to `off`; otherwise it
// leaves its argument for the option's own parser.
func offArg(d *caddyfile.Dispenser) (bool, error) {
	if !d.NextArg() {
		return false, d.ArgErr()
	}
	if d.Val() == "off" {
		return true, nil
	}
	d.Prev()
	return false, nil
}

// sizeArg reads the size argument of the option d is at: one token
// (`10MiB`, `10MB`, `1048576`) or a number and its unit as two (`10 MB`),
// so the unit is never mistaken for the next subdirective.
func sizeArg(d *caddyfile.Dispenser, dst *int64) error {
	return namedSizeArg(d, d.Val(), dst)
}

// namedSizeArg is sizeArg for an option whose name is not the current
// token (ui_cache's size follows its directory).
func namedSizeArg(d *caddyfile.Dispenser, name string, dst *int64) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	s := d.Val()
	if _, err := strconv.ParseFloat(s, 64); err == nil && d.NextArg() {
		switch unit := d.Val(); {
		case isSizeUnit(unit):
			s += unit
		case looksLikeUnit(unit):
			return d.Errf("%s: invalid size unit '%s' in '%s %s': want e.g. 10MiB, 10MB or 10 MB", name, unit, s, unit)
		default:
			d.Prev() // the next option on the line
		}
	}
	n, err := humanize.ParseBytes(s)
	if err != nil || n == 0 || n > 1<<50 {
		return d.Errf("%s: invalid size '%s': want e.g. 10MiB, 10MB or 10 MB", name, s)
	}
	*dst = int64(n)
	return nil
}

// isSizeUnit reports whether tok is a unit humanize understands (`MB`,
// `MiB`, `k`…), as opposed to a keyword or a value.
func isSizeUnit(tok string) bool {
	_, err := humanize.ParseBytes("1" + tok)
	return isLetters(tok) && err == nil
}

// looksLikeUnit reports whether tok, following a number, was meant as a
// unit (`MBs`): a short word, where every option name is longer.
func looksLikeUnit(tok string) bool { return len(tok) <= 4 && isLetters(tok) }

func isLetters(tok string) bool {
	for _, r := range tok {
		if (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') {
			return false
		}
	}
	return tok != ""
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*Handler)(nil)
)
