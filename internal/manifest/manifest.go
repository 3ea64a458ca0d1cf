package manifest

import (
	"fmt"
	"strings"
)

// Manifest is a parsed, validated manifest (capabilities normalised: no
// "cap:" prefix, duplicates removed, in first-seen order).
type Manifest struct {
	Name         string            `json:"name"`
	Publisher    string            `json:"publisher"`
	Version      string            `json:"version"`
	Runtime      string            `json:"runtime"`
	Capabilities []string          `json:"capabilities,omitempty"`
	UI           *UI               `json:"ui,omitempty"`
	API          *API              `json:"api,omitempty"`
	Events       []Event           `json:"events,omitempty"`
	Entry        string            `json:"entry,omitempty"`
	Precompiled  map[string]string `json:"precompiled,omitempty"`
	Assets       []string          `json:"assets,omitempty"`
	SBOM         string            `json:"sbom,omitempty"`
}

// UI describes the extension's iframe UI.
type UI struct {
	Type   string    `json:"type"`
	Entry  string    `json:"entry"`
	Hooks  *UIHooks  `json:"hooks,omitempty"`
	Routes []UIRoute `json:"routes,omitempty"`
}

// UIHooks are the places where the PSA shows a menu entry for the extension.
type UIHooks struct {
	AppMenu          *UIHook `json:"appMenu,omitempty"`
	ClientPortalMenu *UIHook `json:"clientPortalMenu,omitempty"`
}

// UIHook is one menu entry.
type UIHook struct {
	Label string `json:"label"`
}

// UIRoute maps a PSA-side route to a page of the iframe UI.
type UIRoute struct {
	Path       string `json:"path"`
	IframePath string `json:"iframePath"`
}

// API lists the extension's HTTP endpoints. After Parse, Endpoints is
// non-nil whenever API is.
type API struct {
	Endpoints []Endpoint `json:"endpoints"`
}

// Endpoint is one HTTP endpoint served by a handler.
type Endpoint struct {
	Method    string `json:"method"`
	Path      string `json:"path"`
	Handler   string `json:"handler"`
	TimeoutMS int    `json:"timeout_ms,omitempty"`
}

// Event subscribes a handler to a PSA event topic.
type Event struct {
	Topic   string `json:"topic"`
	Handler string `json:"handler"`
}

// Issue is one validation problem. Path is a JSON path like
// "$.api.endpoints[1].path".
type Issue struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

func (i Issue) String() string { return i.Path + ": " + i.Message }

// ValidationError reports every problem found in a manifest. It is returned
// (as *ValidationError) for every invalid manifest.
type ValidationError struct {
	Issues []Issue
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("invalid manifest: ")
	for i, is := range e.Issues {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(is.String())
	}
	return b.String()
}

// Options controls checks that depend on the surroundings of the manifest.
type Options struct {
	// Files reports whether a bundle file exists. nil skips existence
	// checks (e.g. for a manifest alone).
	Files func(path string) bool

	// MaxTimeoutMS is the platform maximum for timeout_ms.
	// Default: 300000.
	MaxTimeoutMS int
}

// DefaultMaxTimeoutMS is the timeout_ms ceiling when Options.MaxTimeoutMS is 0.
const DefaultMaxTimeoutMS = 300000

// MaxManifestBytes bounds the size of a manifest.json that Parse accepts.
const MaxManifestBytes = 256 << 10

func (o Options) maxTimeout() int {
	if o.MaxTimeoutMS > 0 {
		return o.MaxTimeoutMS
	}
	return DefaultMaxTimeoutMS
}

// Parse strictly decodes a manifest and validates it. Unknown keys (at any
// level), duplicate keys and wrong types are issues like any rule violation;
// all of them are returned together in a *ValidationError. On success the
// capabilities are normalised and empty optional lists and maps are nil.
func Parse(data []byte, opts Options) (*Manifest, error) {
	if len(data) > MaxManifestBytes {
		return nil, &ValidationError{Issues: []Issue{{Path: "$", Message: fmt.Sprintf("manifest is larger than %d bytes", MaxManifestBytes)}}}
	}
	d := &decoder{}
	m := d.decode(data)
	if m == nil {
		return nil, &ValidationError{Issues: capIssues(d.issues)}
	}
	issues := d.issues
	for _, is := range m.validate(opts) {
		if !d.isBad(is.Path) {
			issues = append(issues, is)
		}
	}
	if len(issues) > 0 {
		return nil, &ValidationError{Issues: capIssues(issues)}
	}
	m.normalize()
	return m, nil
}

// MaxIssues bounds the issues in one ValidationError; the last one then
// says how many were left out.
const MaxIssues = 100

func capIssues(issues []Issue) []Issue {
	if len(issues) <= MaxIssues {
		return issues
	}
	n := len(issues) - (MaxIssues - 1)
	return append(issues[:MaxIssues-1:MaxIssues-1], Issue{Path: "$", Message: fmt.Sprintf("%d more issues not shown", n)})
}

// Validate applies every §4 rule to m and returns a *ValidationError listing
// all issues, or nil. It accepts capabilities with or without the "cap:"
// prefix and does not modify m.
func (m *Manifest) Validate(opts Options) error {
	if issues := m.validate(opts); len(issues) > 0 {
		return &ValidationError{Issues: capIssues(issues)}
	}
	return nil
}

// normalize strips "cap:" prefixes, removes duplicate capabilities and turns
// empty optional collections into nil so that a parsed manifest marshals and
// parses back to the same value.
func (m *Manifest) normalize() {
	var caps []string
	seen := make(map[string]bool, len(m.Capabilities))
	for _, c := range m.Capabilities {
		n, _ := NormalizeCapability(c)
		if !seen[n] {
			seen[n] = true
			caps = append(caps, n)
		}
	}
	m.Capabilities = caps
	if len(m.Events) == 0 {
		m.Events = nil
	}
	if len(m.Precompiled) == 0 {
		m.Precompiled = nil
	}
	if len(m.Assets) == 0 {
		m.Assets = nil
	}
	if m.UI != nil && len(m.UI.Routes) == 0 {
		m.UI.Routes = nil
	}
	if m.API != nil && m.API.Endpoints == nil {
		m.API.Endpoints = []Endpoint{}
	}
}

// HandlerTarget resolves which module and export are actually called for an
// endpoint or event handler (§4): the handler's own module if it exists in
// the bundle, else the entry module, which dispatches itself on
// endpoint.handler. files reports whether a bundle file exists; nil means
// "assume the handler's module exists".
func (m *Manifest) HandlerTarget(handler string, files func(string) bool) (HandlerRef, error) {
	ref, err := ParseHandlerRef(handler)
	if err != nil {
		return HandlerRef{}, err
	}
	if files == nil || files(ref.Module) {
		return ref, nil
	}
	if m.Entry == "" {
		return HandlerRef{}, fmt.Errorf("handler module %q is not in the bundle and the manifest has no entry", ref.Module)
	}
	entry, err := ParseHandlerRef(m.Entry)
	if err != nil {
		return HandlerRef{}, fmt.Errorf("entry: %v", err)
	}
	if !files(entry.Module) {
		return HandlerRef{}, fmt.Errorf("neither handler module %q nor entry module %q is in the bundle", ref.Module, entry.Module)
	}
	return entry, nil
}
