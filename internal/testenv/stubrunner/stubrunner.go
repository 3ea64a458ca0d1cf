// Package stubrunner is the one test double of runnerd's wire contract
// (SPEC §6.2), for the gateway's tests where a real runner would measure or
// exercise wasm instead of the gateway: GET /readyz and /healthz answer
// 200 without a token; POST /v1/execute checks the bearer token, decodes
// the envelope (unless told not to) and answers what Respond returns, or a
// fixed reply. The gateway's in-process tests serve it on a Unix socket;
// caddymodule/internal/stubrunner wraps it in a process for integration
// tests and benchmarks. It never imports wasmtime (the gateway stays
// cgo-free).
package stubrunner

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/extedge/extedge/internal/execapi"
)

// Runner serves the runner API.
type Runner struct {
	token string
	// Reply is the fixed execute reply (a JSON execapi.Response) used when
	// no Respond function is set.
	reply    []byte
	replyLen string
	// Delay is slept before an execute call is answered.
	Delay time.Duration
	// NoDecode drains the envelope without decoding it (benchmarks: charge
	// the gateway, not the stub). Respond then sees an empty request.
	NoDecode bool
	// Other serves every path that is not part of the runner API; nil
	// means 404.
	Other http.Handler

	calls   atomic.Int64
	cpu     atomic.Int64 // µs reported in execapi.HeaderCPU; 0: no header
	mu      sync.Mutex
	last    *execapi.Request
	respond func(req *execapi.Request) (int, any)
}

// New returns a runner that expects token and answers every execute call
// with reply until SetRespond is called.
func New(token string, reply execapi.Response) *Runner {
	b, _ := json.Marshal(reply)
	return &Runner{token: token, reply: b, replyLen: strconv.Itoa(len(b))}
}

// SetRespond makes execute calls answer f's status and JSON body; nil
// restores the fixed reply.
func (s *Runner) SetRespond(f func(req *execapi.Request) (int, any)) {
	s.mu.Lock()
	s.respond = f
	s.mu.Unlock()
}

// Last is the most recent execute envelope (nil before the first call).
func (s *Runner) Last() *execapi.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// SetCPU makes every execute reply report d as the guest's CPU time
// (execapi.HeaderCPU), as runnerd does for a guest that ran; zero stops
// sending the header.
func (s *Runner) SetCPU(d time.Duration) { s.cpu.Store(d.Microseconds()) }

// Calls counts authorised execute calls.
func (s *Runner) Calls() int64 { return s.calls.Load() }

// ServeHTTP implements http.Handler.
func (s *Runner) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case execapi.PathReadyz, execapi.PathHealthz:
		w.WriteHeader(http.StatusOK)
		return
	case execapi.PathExecute:
	default:
		if s.Other != nil {
			s.Other.ServeHTTP(w, r)
			return
		}
		http.NotFound(w, r)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+s.token {
		writeJSON(w, http.StatusUnauthorized, execapi.ErrorBody{Error: execapi.Error{Code: execapi.CodeUnauthorized, Message: "bad token"}})
		return
	}
	s.calls.Add(1)
	req := new(execapi.Request)
	if s.NoDecode {
		_, _ = io.Copy(io.Discard, r.Body)
	} else if err := json.NewDecoder(r.Body).Decode(req); err != nil {
		writeJSON(w, http.StatusBadRequest, execapi.ErrorBody{Error: execapi.Error{Code: execapi.CodeBadRequest, Message: "bad envelope"}})
		return
	}
	s.mu.Lock()
	s.last = req
	respond := s.respond
	s.mu.Unlock()
	if s.Delay > 0 {
		time.Sleep(s.Delay)
	}
	if us := s.cpu.Load(); us > 0 {
		execapi.SetCPU(w.Header(), time.Duration(us)*time.Microsecond)
	}
	if respond != nil {
		status, body := respond(req)
		writeJSON(w, status, body)
		return
	}
	w.Header()["Content-Type"] = []string{"application/json"}
	w.Header()["Content-Length"] = []string{s.replyLen}
	w.Write(s.reply)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
