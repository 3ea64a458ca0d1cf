package registryapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// APIError is a registryd error reply.
type APIError struct {
	Status  int
	Code    string
	Message string
	Details json.RawMessage
}

func (e *APIError) Error() string {
	return fmt.Sprintf("registry: %d %s: %s", e.Status, e.Code, e.Message)
}

// IsCode reports whether err is an APIError with that code.
func IsCode(err error, code string) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Code == code
}

// Client calls registryd with a bearer token. The zero timeout of the
// underlying http.Client is fine: every call takes a context.
type Client struct {
	base  string
	token string
	hc    *http.Client
}

// New returns a client for baseURL (e.g. http://127.0.0.1:7070). hc may be
// nil: the client then gets its own NewTransport.
func New(baseURL, token string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Transport: NewTransport()}
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), token: token, hc: hc}
}

// MaxIdleConnsPerHost is how many idle keep-alive connections to registryd
// NewTransport keeps. A runner makes KV calls from every guest it runs at
// once; net/http's default of 2 would close (and later redial) the
// connections of all but two of them after each burst.
const MaxIdleConnsPerHost = 64

// NewTransport is http.DefaultTransport's settings with room for
// MaxIdleConnsPerHost idle connections to the registry. Callers that need
// their own TLS config clone it and set TLSClientConfig.
func NewTransport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = max(tr.MaxIdleConns, MaxIdleConnsPerHost)
	tr.MaxIdleConnsPerHost = MaxIdleConnsPerHost
	return tr
}

// drainMax bounds what closeBody reads to reuse a connection; a longer
// leftover is cheaper to drop with the connection.
const drainMax = 64 << 10

// closeBody reads what is left of a reply (a JSON decoder stops before the
// trailing newline and, on a chunked reply, before the last chunk) and
// closes it, so the keep-alive connection goes back to the pool instead of
// being closed.
func closeBody(resp *http.Response) {
	_, _ = io.CopyN(io.Discard, resp.Body, drainMax)
	resp.Body.Close()
}

// BaseURL returns the registry's base URL.
func (c *Client) BaseURL() string { return c.base }

// Do sends a request with the token and decodes a JSON reply into out
// (unless nil). Non-2xx replies become *APIError. body may be nil or an
// io.Reader; anything else is JSON-encoded.
func (c *Client) Do(ctx context.Context, method, path string, body any, out any) error {
	resp, err := c.send(ctx, method, path, body, nil)
	if err != nil {
		return err
	}
	defer closeBody(resp)
	return decode(resp, out)
}

func (c *Client) send(ctx context.Context, method, path string, body any, hdr http.Header) (*http.Response, error) {
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case io.Reader:
		r = b
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		r = bytes.NewReader(buf)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("registry %s %s: %w", method, path, err)
	}
	return resp, nil
}

func decode(resp *http.Response, out any) error {
	if resp.StatusCode >= 300 {
		return readAPIError(resp)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("registry: decoding reply: %v", err)
	}
	return nil
}

func readAPIError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var eb ErrorBody
	ae := &APIError{Status: resp.StatusCode}
	if json.Unmarshal(b, &eb) == nil && eb.Error.Code != "" {
		ae.Code, ae.Message, ae.Details = eb.Error.Code, eb.Error.Message, eb.Error.Details
	} else {
		ae.Code = "http_" + strconv.Itoa(resp.StatusCode)
		ae.Message = strings.TrimSpace(string(b))
	}
	return ae
}

// Resolve fetches an install. With a non-empty etag it may return
// notModified=true and no body.
func (c *Client) Resolve(ctx context.Context, tenant, extension, etag string) (res *Resolved, newETag string, notModified bool, err error) {
	var hdr http.Header
	if etag != "" {
		hdr = http.Header{"If-None-Match": {etag}}
	}
	resp, err := c.send(ctx, http.MethodGet, "/v1/resolve/"+url.PathEscape(tenant)+"/"+url.PathEscape(extension), nil, hdr)
	if err != nil {
		return nil, "", false, err
	}
	defer closeBody(resp)
	if resp.StatusCode == http.StatusNotModified {
		return nil, etag, true, nil
	}
	res = new(Resolved)
	if err := decode(resp, res); err != nil {
		return nil, "", false, err
	}
	return res, resp.Header.Get("ETag"), false, nil
}

// BundleStatus asks whether hash is a usable version of extension.
func (c *Client) BundleStatus(ctx context.Context, hash, extension string) (*BundleStatus, error) {
	var st BundleStatus
	err := c.Do(ctx, http.MethodGet, "/v1/bundles/"+url.PathEscape(hash)+"/status?extension="+url.QueryEscape(extension), nil, &st)
	if err != nil {
		return nil, err
	}
	return &st, nil
}

// Storage performs one KV operation.
func (c *Client) Storage(ctx context.Context, req StorageRequest) (*StorageResponse, error) {
	var out StorageResponse
	if err := c.Do(ctx, http.MethodPost, "/v1/internal/storage", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PostExecutions sends a batch of execution records.
func (c *Client) PostExecutions(ctx context.Context, recs []ExecutionRecord) error {
	return c.Do(ctx, http.MethodPost, "/v1/internal/executions", ExecutionBatch{Records: recs}, nil)
}

// Changes follows the change feed from lastID (0 = from now) and calls fn
// for each event until ctx ends or the stream breaks; it returns the last
// event id seen so the caller can reconnect and resume. A nil error means
// the server closed the stream cleanly.
func (c *Client) Changes(ctx context.Context, lastID int64, fn func(Change)) (int64, error) {
	hdr := http.Header{"Accept": {"text/event-stream"}}
	if lastID > 0 {
		hdr.Set("Last-Event-ID", strconv.FormatInt(lastID, 10))
	}
	resp, err := c.send(ctx, http.MethodGet, "/v1/changes", nil, hdr)
	if err != nil {
		return lastID, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return lastID, readAPIError(resp)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var data strings.Builder
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data.Len() > 0 {
				var ch Change
				if json.Unmarshal([]byte(data.String()), &ch) == nil {
					if ch.ID > lastID {
						lastID = ch.ID
					}
					fn(ch)
				}
				data.Reset()
			}
		case strings.HasPrefix(line, "data:"):
			data.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		}
	}
	if err := sc.Err(); err != nil {
		return lastID, err
	}
	return lastID, nil
}

// WriteChange writes ch as one event of the /v1/changes stream, in the
// framing Changes reads: `id:`, `event:` (the type) and `data:` (the JSON).
func WriteChange(w io.Writer, ch Change) error {
	data, err := json.Marshal(ch)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", ch.ID, ch.Type, data)
	return err
}

// FollowChanges runs Changes in a loop with backoff until ctx ends, so a
// registry restart only delays events; onReconnect (may be nil) is called
// after each break, since events may have been missed while disconnected
// if the server could not replay them — callers typically expire caches.
func (c *Client) FollowChanges(ctx context.Context, fn func(Change), onReconnect func(error)) {
	var last int64
	wait := ReconnectBackoff()
	for ctx.Err() == nil {
		start := time.Now()
		id, err := c.Changes(ctx, last, fn)
		last = id
		if ctx.Err() != nil {
			return
		}
		if onReconnect != nil {
			onReconnect(err)
		}
		if time.Since(start) > 10*time.Second {
			wait.Reset()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait.NextBackOff()):
		}
	}
}

// ReconnectBackoff is how a component waits between attempts to reach
// registryd again: exponential from 200 ms up to 5 s, each wait randomised
// by ±50 % so that gateways and runners which lost registryd together (a
// registryd restart) do not all come back in the same instant.
func ReconnectBackoff() *backoff.ExponentialBackOff {
	return &backoff.ExponentialBackOff{
		InitialInterval:     200 * time.Millisecond,
		RandomizationFactor: 0.5,
		Multiplier:          2,
		MaxInterval:         5 * time.Second,
	}
}
