package main

// History commands (SPEC §21): logs and usage.
//
//   - logs prints the newest --limit matching execution records, oldest
//     first (so the output reads like a log and --follow continues it),
//     walking the registry's cursor pages. --limit 0 prints every match.
//   - logs --follow then tails the gateway's live debug stream
//     (GET /api/ext-debug/stream, Server-Sent Events). The gateway
//     authenticates the PSA's way, so the stream needs its own token (a
//     JWT with extension:debug) and shows that token's tenant; it resumes
//     after a dropped connection with Last-Event-ID and ends cleanly on
//     Ctrl-C.
//   - --since and --until take a duration back from now (90m, 2h, 7d) or
//     an RFC 3339 time.
//   - --json prints one JSON object a line: {"type":"execution",…the
//     record} and, when following, {"type":"debug","id":…,…the entry}.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/extedge/extedge/internal/registryapi"
)

// debugStreamPath is the gateway's debug stream (SPEC §8).
const debugStreamPath = "/api/ext-debug/stream"

// Codes of --follow failures.
const (
	codeGatewayUnreachable = "gateway_unreachable"
)

// parseWhen reads --since/--until: a duration back from now (with d for
// days) or an RFC 3339 time.
func parseWhen(flagName, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(v)
	if days, ok := strings.CutSuffix(v, "d"); ok && err != nil {
		n, nerr := strconv.Atoi(days)
		d, err = time.Duration(n)*24*time.Hour, nerr
	}
	if err != nil || d <= 0 {
		return time.Time{}, usageError{fmt.Sprintf("--%s %q must be a duration back from now (90m, 2h, 7d) or an RFC 3339 time", flagName, v)}
	}
	return now.Add(-d), nil
}

// gatewayFlags are --follow's flags.
type gatewayFlags struct {
	url       string
	tokenFile string
	// minted is a token made up by the command itself (dev, from the
	// demo's session secret); used when neither flag nor variable gives one.
	minted string
}

func addGatewayFlags(fs *flagSet) *gatewayFlags {
	g := new(gatewayFlags)
	fs.StringVar(&g.url, "gateway", "", "gateway base `URL` whose debug stream --follow tails")
	fs.bindEnv("gateway", "EXTEDGE_GATEWAY")
	fs.StringVar(&g.tokenFile, "gateway-token-file", "", "`FILE` holding the gateway token, a JWT with extension:debug (without it, the token in $EXTEDGE_GATEWAY_TOKEN)")
	fs.bindEnv("gateway-token-file", "EXTEDGE_GATEWAY_TOKEN_FILE")
	return g
}

func (g *gatewayFlags) token() (string, error) {
	if g.tokenFile != "" {
		b, err := os.ReadFile(g.tokenFile)
		if err != nil {
			return "", fmt.Errorf("reading gateway token file: %v", err)
		}
		if tok := strings.TrimSpace(string(b)); tok != "" {
			return tok, nil
		}
		return "", fmt.Errorf("gateway token file %s is empty", g.tokenFile)
	}
	if tok := strings.TrimSpace(os.Getenv("EXTEDGE_GATEWAY_TOKEN")); tok != "" {
		return tok, nil
	}
	if g.minted != "" {
		return g.minted, nil
	}
	return "", usageError{"--follow needs a gateway token: pass --gateway-token-file F (or set EXTEDGE_GATEWAY_TOKEN_FILE or EXTEDGE_GATEWAY_TOKEN)"}
}

func logsCmd(fs *flagSet) runFunc {
	tenant := fs.String("tenant", "", "tenant id")
	ext := fs.String("extension", "", "extension name")
	since := fs.String("since", "", "only calls started since this `WHEN`: a duration back from now (90m, 2h, 7d) or an RFC 3339 time")
	until := fs.String("until", "", "only calls started before this `WHEN` (as --since)")
	outcome := fs.String("outcome", "", `only calls with this outcome: ok, error (every failure) or an error code`)
	endpoint := fs.String("endpoint", "", `only calls of this endpoint, e.g. "GET /items/:id"`)
	status := fs.String("status", "", "only calls whose guest answered this HTTP status (404) or class (5xx)")
	requestID := fs.String("request-id", "", "only the call with this request id")
	limit := fs.Int("limit", 100, "print at most the newest `N` matching calls (0: all)")
	follow := fs.Bool("follow", false, "after the history, tail the gateway's live debug stream until interrupted")
	gw := addGatewayFlags(fs)
	rf := addRegistryFlags(fs, time.Minute)
	return func(c *cli, pos []string) error {
		if len(pos) > 0 || *tenant == "" || *ext == "" {
			return usageError{"logs needs --tenant and --extension and no arguments"}
		}
		if *limit < 0 {
			return usageError{"--limit must be 0 or more"}
		}
		now := time.Now()
		q := registryapi.ExecutionQuery{Outcome: *outcome, Endpoint: *endpoint, Status: *status, RequestID: *requestID}
		var err error
		if q.Since, err = parseWhen("since", *since, now); err != nil {
			return err
		}
		if q.Until, err = parseWhen("until", *until, now); err != nil {
			return err
		}
		var stream *debugStream
		if *follow {
			if stream, err = gw.stream(*ext); err != nil {
				return err
			}
		}
		s, err := rf.session()
		if err != nil {
			return err
		}
		recs, err := fetchHistory(s, *tenant, *ext, q, *limit)
		s.cancel()
		if err != nil {
			return s.wrap(err)
		}
		out := newLogPrinter(c.stdout, *rf.asJSON)
		for _, x := range slices.Backward(recs) {
			out.execution(x)
		}
		if err := out.flush(); err != nil || stream == nil {
			return err
		}
		ctx, stop := signal.NotifyContext(c.context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return stream.follow(ctx, c.stderr, out)
	}
}

// fetchHistory walks the registry's pages until it has limit records (0:
// all), newest first.
func fetchHistory(s *session, tenant, ext string, q registryapi.ExecutionQuery, limit int) ([]registryapi.Execution, error) {
	var out []registryapi.Execution
	for {
		q.Limit = 500
		if limit > 0 {
			q.Limit = min(500, limit-len(out))
		}
		page, err := s.client.ListExecutions(s.ctx, tenant, ext, q)
		if err != nil {
			return nil, err
		}
		out = append(out, page.Executions...)
		if page.NextCursor == "" || (limit > 0 && len(out) >= limit) {
			return out, nil
		}
		q.Cursor = page.NextCursor
	}
}

// logPrinter writes history records and live lines, as aligned text or
// JSON lines.
type logPrinter struct {
	w      io.Writer
	tw     *tabwriter.Writer
	asJSON bool
	header bool
}

func newLogPrinter(w io.Writer, asJSON bool) *logPrinter {
	return &logPrinter{w: w, asJSON: asJSON, tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
}

func (p *logPrinter) execution(x registryapi.Execution) {
	if p.asJSON {
		b, _ := json.Marshal(struct {
			Type string `json:"type"`
			registryapi.Execution
		}{"execution", x})
		fmt.Fprintf(p.w, "%s\n", b)
		return
	}
	if !p.header {
		fmt.Fprintln(p.tw, "STARTED\tREQUEST\tENDPOINT\tOUTCOME\tSTATUS\tDURATION\tCPU\tEGRESS")
		p.header = true
	}
	st := "-"
	if x.HTTPStatus != 0 {
		st = strconv.Itoa(x.HTTPStatus)
	}
	fmt.Fprintf(p.tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d B\n", x.StartedAt.UTC().Format("2006-01-02T15:04:05.000Z"), x.RequestID,
		orDash(x.Endpoint), x.Outcome, st, millis(x.DurationMS), millis(x.CPUMS), x.EgressBytes)
}

func millis(ms float64) string { return strconv.FormatFloat(ms, 'f', 1, 64) + "ms" }

// debug prints one entry of the debug stream.
func (p *logPrinter) debug(id string, entry map[string]any) {
	if p.asJSON {
		out := make(map[string]any, len(entry)+2)
		for k, v := range entry {
			out[k] = v
		}
		out["type"], out["id"] = "debug", id
		b, _ := json.Marshal(out)
		fmt.Fprintf(p.w, "%s\n", b)
		return
	}
	field := func(k string) string { s, _ := entry[k].(string); return s }
	fmt.Fprintf(p.w, "%s  %-5s  %s  %s\n", orDash(field("ts")), orDash(field("level")), orDash(field("request")), oneLine(field("message")))
}

func (p *logPrinter) flush() error { return p.tw.Flush() }

// debugStream is the gateway's debug stream of one extension.
type debugStream struct {
	url    string
	token  string
	hc     *http.Client
	stderr io.Writer // notices: connected, reconnecting, gateway errors
	// idle overrides followIdle (tests).
	idle time.Duration
}

// stream checks the flags; the gateway is verified against the system
// roots (it is the PSA's public front, unlike a registry behind a private CA).
func (g *gatewayFlags) stream(ext string) (*debugStream, error) {
	u, err := url.Parse(g.url)
	if g.url == "" {
		return nil, usageError{"--follow needs --gateway URL (or $EXTEDGE_GATEWAY)"}
	}
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usageError{fmt.Sprintf("--gateway %q must be an http:// or https:// URL", g.url)}
	}
	tok, err := g.token()
	if err != nil {
		return nil, err
	}
	return &debugStream{
		url:   strings.TrimSuffix(g.url, "/") + debugStreamPath + "?extension=" + url.QueryEscape(ext),
		token: tok,
		hc:    &http.Client{},
	}, nil
}

// Reconnect delays of --follow.
const (
	followRetryMin = 500 * time.Millisecond
	followRetryMax = 10 * time.Second
)

// followIdle is how long a connection may stay silent before --follow
// drops and reopens it: the gateway sends a keep-alive comment every 15 s,
// so three missed ones mean a dead connection (a TCP peer that vanished
// without a reset never ends the read otherwise).
const followIdle = 45 * time.Second

// follow prints the stream's entries until ctx ends (a clean return). A
// refusal on the first connection (bad token, no Redis) is an error; later
// drops reconnect with Last-Event-ID, backing off.
func (d *debugStream) follow(ctx context.Context, stderr io.Writer, out *logPrinter) error {
	d.stderr = stderr
	last := ""
	delay := followRetryMin
	for attempt := 0; ; attempt++ {
		connected, err := d.read(ctx, &last, out, func() {
			if attempt == 0 {
				fmt.Fprintln(stderr, "following the live debug stream (Ctrl-C to stop)")
			}
		})
		if ctx.Err() != nil {
			return nil
		}
		var ge *gatewayError
		if errors.As(err, &ge) && (attempt == 0 || ge.status < 500) {
			return &codedError{ge.code, "gateway: " + ge.Error()}
		}
		if !connected && attempt == 0 {
			return &codedError{codeGatewayUnreachable, fmt.Sprintf("cannot reach the gateway's debug stream: %v", err)}
		}
		if connected {
			delay = followRetryMin
		}
		fmt.Fprintf(stderr, "debug stream interrupted (%v); reconnecting\n", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(2*delay, followRetryMax)
	}
}

// gatewayError is a refusal of the gateway ({"error":{"code","message"}}).
type gatewayError struct {
	status        int
	code, message string
}

func (e *gatewayError) Error() string { return e.code + ": " + oneLine(e.message) }

// read runs one connection: it reports whether the stream was opened and
// why it ended, and keeps *last at the newest entry id printed.
func (d *debugStream) read(ctx context.Context, last *string, out *logPrinter, onOpen func()) (bool, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	idle := d.idle
	if idle == 0 {
		idle = followIdle
	}
	watchdog := time.AfterFunc(idle, func() { cancel(fmt.Errorf("no data for %s", idle)) })
	defer watchdog.Stop()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.url, nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Authorization", "Bearer "+d.token)
	req.Header.Set("Accept", "text/event-stream")
	if *last != "" {
		req.Header.Set("Last-Event-ID", *last)
	}
	resp, err := d.hc.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var body struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body)
		if body.Error.Code == "" {
			body.Error.Code, body.Error.Message = "http_"+strconv.Itoa(resp.StatusCode), resp.Status
		}
		return false, &gatewayError{resp.StatusCode, body.Error.Code, body.Error.Message}
	}
	onOpen()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var id, event string
	var data strings.Builder
	for sc.Scan() {
		watchdog.Reset(idle)
		line := sc.Text()
		switch {
		case line == "":
			switch event {
			case "log":
				var entry map[string]any
				if json.Unmarshal([]byte(data.String()), &entry) == nil {
					out.debug(id, entry)
				}
				if id != "" {
					*last = id
				}
			case "error":
				// The gateway lost Redis for a moment; it keeps the stream.
				fmt.Fprintf(d.stderr, "debug stream: the gateway reports %s\n", oneLine(data.String()))
			}
			id, event = "", ""
			data.Reset()
		case strings.HasPrefix(line, ":"):
		default:
			k, v, _ := strings.Cut(line, ":")
			v = strings.TrimPrefix(v, " ")
			switch k {
			case "id":
				id = v
			case "event":
				event = v
			case "data":
				if data.Len() > 0 {
					data.WriteByte('\n')
				}
				data.WriteString(v)
			}
		}
	}
	if cause := context.Cause(ctx); cause != nil && cause != ctx.Err() {
		return true, cause // the watchdog's
	}
	if err := sc.Err(); err != nil {
		return true, err
	}
	return true, io.ErrUnexpectedEOF
}

func usageCmd(fs *flagSet) runFunc {
	tenant := fs.String("tenant", "", "tenant id")
	ext := fs.String("extension", "", "extension name")
	since := fs.String("since", "1h", "from this `WHEN`: a duration back from now (90m, 2h, 7d) or an RFC 3339 time; at most 31 days")
	until := fs.String("until", "", "up to this `WHEN` (as --since; default now)")
	rf := addRegistryFlags(fs, time.Minute)
	return func(c *cli, pos []string) error {
		if len(pos) > 0 || *tenant == "" || *ext == "" {
			return usageError{"usage needs --tenant and --extension and no arguments"}
		}
		now := time.Now()
		from, err := parseWhen("since", *since, now)
		if err != nil {
			return err
		}
		to, err := parseWhen("until", *until, now)
		if err != nil {
			return err
		}
		s, err := rf.session()
		if err != nil {
			return err
		}
		defer s.cancel()
		rep, err := s.client.Usage(s.ctx, *tenant, *ext, from, to)
		if err != nil {
			return s.wrap(err)
		}
		if *rf.asJSON {
			return c.printJSON(rep)
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "MINUTE\tINVOCATIONS\tERRORS\tCPU MS\tEGRESS BYTES\t")
		for _, m := range rep.Minutes {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%d\t\n", m.WindowStart.UTC().Format("2006-01-02T15:04Z"), m.Invocations, m.Errors, strconv.FormatFloat(m.CPUMS, 'f', 1, 64), m.EgressBytes)
		}
		t := rep.Total
		fmt.Fprintf(tw, "TOTAL\t%d\t%d\t%s\t%d\t\n", t.Invocations, t.Errors, strconv.FormatFloat(t.CPUMS, 'f', 1, 64), t.EgressBytes)
		return tw.Flush()
	}
}
