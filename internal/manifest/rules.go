package manifest

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// KnownCapabilities is the set of capabilities this platform provides (§4),
// without the "cap:" prefix.
var KnownCapabilities = []string{
	"http.fetch", "storage.kv", "secrets.get", "log.emit", "metrics.emit", "context.read", "user.read",
}

// AlwaysGranted lists the capabilities every install has, whether or not
// the manifest or the tenant asks for them.
var AlwaysGranted = []string{"log.emit", "metrics.emit", "context.read"}

// CapabilityPrefix is the optional prefix the PSA's own manifests use.
const CapabilityPrefix = "cap:"

// NormalizeCapability strips the "cap:" prefix and reports whether the
// capability is provided by this platform.
func NormalizeCapability(c string) (string, bool) {
	c = strings.TrimPrefix(c, CapabilityPrefix)
	for _, k := range KnownCapabilities {
		if c == k {
			return c, true
		}
	}
	return c, false
}

// Limits from §4 and §2.1.
const (
	maxNameLen        = 128
	maxPublisherLen   = 128
	maxBundlePathLen  = 256
	maxRoutePathLen   = 1024
	maxTargetNameLen  = 64
	defaultExportName = "handler"
)

// ValidName reports whether name follows the §4 name rule: reverse-domain,
// lowercase labels of [a-z0-9] with inner "-", at least two labels, at most
// 128 characters. The gateway uses it for extensionId too.
func ValidName(name string) bool {
	if len(name) == 0 || len(name) > maxNameLen {
		return false
	}
	labels := 1
	start := 0
	for i := 0; i <= len(name); i++ {
		if i < len(name) && name[i] != '.' {
			c := name[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
			continue
		}
		// name[start:i] is a label.
		if i == start || name[start] == '-' || name[i-1] == '-' {
			return false
		}
		if i < len(name) {
			labels++
		}
		start = i + 1
	}
	return labels >= 2
}

// semverRE is the regular expression recommended by semver.org for
// Semantic Versioning 2.0.0.
var semverRE = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)

// ValidVersion reports whether v is a Semantic Versioning 2.0.0 version.
func ValidVersion(v string) bool { return semverRE.MatchString(v) }

func validMethod(m string) bool {
	switch m {
	case "GET", "POST", "PUT", "PATCH", "DELETE":
		return true
	}
	return false
}

// checkBundlePath reports why p is not a clean relative bundle path (§2.1),
// or nil.
func checkBundlePath(p string) error {
	switch {
	case p == "":
		return errors.New("must not be empty")
	case len(p) > maxBundlePathLen:
		return fmt.Errorf("must be at most %d bytes", maxBundlePathLen)
	case !utf8.ValidString(p):
		return errors.New("must be valid UTF-8")
	case strings.HasPrefix(p, "/"):
		return errors.New("must be relative (no leading \"/\")")
	case strings.ContainsRune(p, '\\'):
		return errors.New("must use \"/\" as separator (no \"\\\")")
	case strings.IndexFunc(p, unicode.IsControl) >= 0:
		return errors.New("must not contain control characters")
	}
	for _, seg := range strings.Split(p, "/") {
		switch {
		case seg == "":
			return errors.New("must not contain empty segments")
		case seg == "." || seg == "..":
			return errors.New("must not contain \".\" or \"..\" segments")
		case seg[0] == '.':
			return errors.New("must not contain hidden segments (starting with \".\")")
		}
	}
	return nil
}

// ValidBundlePath reports whether p is a clean relative bundle path (§2.1).
func ValidBundlePath(p string) bool { return checkBundlePath(p) == nil }

// validIdent reports whether s matches [A-Za-z_][A-Za-z0-9_]*.
func validIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return false
	}
	return true
}

// HandlerRef names a wasm module in the bundle and the export to call.
type HandlerRef struct {
	Module string // bundle path, always ends in ".wasm"
	Export string // defaults to "handler"
}

// ParseHandlerRef parses a `path[#export]` reference (§4): the module is
// path if it ends in ".wasm", else path + ".wasm"; export defaults to
// "handler" and must be an identifier.
func ParseHandlerRef(ref string) (HandlerRef, error) {
	p, export, hasExport := strings.Cut(ref, "#")
	if p == "" {
		return HandlerRef{}, errors.New("handler must be path[#export] with a non-empty path")
	}
	if hasExport {
		if !validIdent(export) {
			return HandlerRef{}, fmt.Errorf("export %q must be an identifier ([A-Za-z_][A-Za-z0-9_]*)", export)
		}
	} else {
		export = defaultExportName
	}
	if !strings.HasSuffix(p, ".wasm") {
		p += ".wasm"
	}
	if err := checkBundlePath(p); err != nil {
		return HandlerRef{}, fmt.Errorf("module path %q %v", p, err)
	}
	return HandlerRef{Module: p, Export: export}, nil
}

// checkAssetGlob reports why g is not an acceptable asset glob, or nil.
func checkAssetGlob(g string) error {
	if !strings.HasPrefix(g, "ui/") {
		return errors.New("must start with \"ui/\": assets may only match files under ui/")
	}
	if len(g) > maxBundlePathLen || !utf8.ValidString(g) || strings.ContainsRune(g, '\\') ||
		strings.IndexFunc(g, unicode.IsControl) >= 0 {
		return errors.New("must be a \"/\"-separated glob of valid UTF-8 without \"\\\" or control characters, at most 256 bytes")
	}
	for _, seg := range strings.Split(g, "/")[1:] {
		switch {
		case seg == "":
			return errors.New("must not contain empty segments")
		case seg == "." || seg == "..":
			return errors.New("must not contain \".\" or \"..\" segments")
		case seg == "**":
			continue
		case strings.Contains(seg, "**"):
			return errors.New("\"**\" must be a whole segment")
		}
		if _, err := path.Match(seg, ""); err != nil {
			return fmt.Errorf("segment %q is not a valid glob", seg)
		}
	}
	return nil
}

var topicRE = regexp.MustCompile(`^[a-z0-9_.-]+$`)

// TopicRule is the syntax of an event topic (§4 events), as error messages
// show it. MaxTopicLen is not in SPEC: it keeps a topic within what an
// index entry holds, and is far above any real topic name.
const (
	TopicRule   = "[a-z0-9_.-]+"
	MaxTopicLen = 256
)

// ValidTopic reports whether t is an event topic: the manifest's
// subscriptions and POST /v1/events (§18) check this one rule.
func ValidTopic(t string) bool { return len(t) <= MaxTopicLen && topicRE.MatchString(t) }

var targetRE = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// validate applies every §4 rule to m.
func (m *Manifest) validate(opts Options) []Issue {
	var v validator
	v.opts = opts

	switch {
	case m.Name == "":
		v.add("$.name", "is required")
	case !ValidName(m.Name):
		v.add("$.name", "must be a reverse-domain name of lowercase labels ([a-z0-9] with inner \"-\"), at least two labels, at most 128 characters")
	}
	switch {
	case strings.TrimSpace(m.Publisher) == "":
		v.add("$.publisher", "is required and must not be blank")
	case utf8.RuneCountInString(m.Publisher) > maxPublisherLen:
		v.add("$.publisher", "must be at most 128 characters")
	case strings.IndexFunc(m.Publisher, unicode.IsControl) >= 0:
		v.add("$.publisher", "must not contain control characters")
	}
	switch {
	case m.Version == "":
		v.add("$.version", "is required")
	case !ValidVersion(m.Version):
		v.add("$.version", fmt.Sprintf("%q is not a semantic version (semver 2.0, e.g. 1.2.3 or 1.2.3-beta.1+build.5)", m.Version))
	}
	switch m.Runtime {
	case "":
		v.add("$.runtime", "is required")
	case "wasm-js@1", "wasm@1":
	default:
		v.add("$.runtime", fmt.Sprintf("%q is not supported: must be \"wasm-js@1\" or \"wasm@1\"", m.Runtime))
	}
	for i, c := range m.Capabilities {
		if _, ok := NormalizeCapability(c); !ok {
			v.add(fmt.Sprintf("$.capabilities[%d]", i), fmt.Sprintf("capability %q is not provided by this platform", c))
		}
	}

	// entry is validated first: handlers fall back to it.
	entryOK := false
	if m.Entry != "" {
		ref, err := ParseHandlerRef(m.Entry)
		switch {
		case err != nil:
			v.add("$.entry", err.Error())
		case !v.exists(ref.Module):
			v.add("$.entry", fmt.Sprintf("module %q is not in the bundle", ref.Module))
		default:
			entryOK = true
		}
	}
	checkHandler := func(p, h string) {
		if h == "" {
			v.add(p, "is required")
			return
		}
		ref, err := ParseHandlerRef(h)
		if err != nil {
			v.add(p, err.Error())
			return
		}
		if !v.exists(ref.Module) && !entryOK {
			v.add(p, fmt.Sprintf("module %q is not in the bundle and there is no entry module to dispatch it", ref.Module))
		}
	}

	if m.UI != nil {
		v.validateUI(m.UI)
	}
	if m.API != nil {
		_, issues := compileRoutes(m.API.Endpoints, opts.maxTimeout())
		v.issues = append(v.issues, issues...)
		for i, ep := range m.API.Endpoints {
			checkHandler(fmt.Sprintf("$.api.endpoints[%d].handler", i), ep.Handler)
		}
	}
	for i, ev := range m.Events {
		p := fmt.Sprintf("$.events[%d]", i)
		switch {
		case ev.Topic == "":
			v.add(p+".topic", "is required")
		case !ValidTopic(ev.Topic):
			v.add(p+".topic", fmt.Sprintf("%q must match %s (at most %d bytes)", ev.Topic, TopicRule, MaxTopicLen))
		}
		checkHandler(p+".handler", ev.Handler)
	}
	for _, target := range sortedKeys(m.Precompiled) {
		p := "$.precompiled" + keyPath(target)
		if len(target) > maxTargetNameLen || !targetRE.MatchString(target) {
			v.add(p, fmt.Sprintf("target name %q must match [A-Za-z0-9_.-]+ and be at most %d bytes", target, maxTargetNameLen))
		}
		v.bundleFile(p, m.Precompiled[target])
	}
	for i, g := range m.Assets {
		if err := checkAssetGlob(g); err != nil {
			v.add(fmt.Sprintf("$.assets[%d]", i), fmt.Sprintf("glob %q %v", g, err))
		}
	}
	if m.SBOM != "" {
		v.bundleFile("$.sbom", m.SBOM)
	}
	return v.issues
}

func (v *validator) validateUI(ui *UI) {
	switch ui.Type {
	case "":
		v.add("$.ui.type", "is required")
	case "iframe":
	default:
		v.add("$.ui.type", fmt.Sprintf("%q is not supported: must be \"iframe\"", ui.Type))
	}
	if ui.Entry == "" {
		v.add("$.ui.entry", "is required")
	} else {
		v.uiFile("$.ui.entry", ui.Entry)
	}
	if h := ui.Hooks; h != nil {
		for _, hk := range []struct {
			name string
			hook *UIHook
		}{{"appMenu", h.AppMenu}, {"clientPortalMenu", h.ClientPortalMenu}} {
			if hk.hook != nil && strings.TrimSpace(hk.hook.Label) == "" {
				v.add("$.ui.hooks."+hk.name+".label", "is required and must not be blank")
			}
		}
	}
	seen := make(map[string]int, len(ui.Routes))
	for i, r := range ui.Routes {
		p := fmt.Sprintf("$.ui.routes[%d]", i)
		switch {
		case !strings.HasPrefix(r.Path, "/"):
			v.add(p+".path", "must start with \"/\"")
		case strings.IndexFunc(r.Path, unicode.IsControl) >= 0:
			v.add(p+".path", "must not contain control characters")
		default:
			if j, dup := seen[r.Path]; dup {
				v.add(p+".path", fmt.Sprintf("route %q is already defined at $.ui.routes[%d]", r.Path, j))
			} else {
				seen[r.Path] = i
			}
		}
		if r.IframePath == "" {
			v.add(p+".iframePath", "is required")
		} else {
			v.uiFile(p+".iframePath", r.IframePath)
		}
	}
}

type validator struct {
	opts   Options
	issues []Issue
}

func (v *validator) add(path, msg string) {
	v.issues = append(v.issues, Issue{Path: path, Message: msg})
}

// exists reports whether a bundle file exists; without Files everything does.
func (v *validator) exists(p string) bool { return v.opts.Files == nil || v.opts.Files(p) }

func (v *validator) bundleFile(p, file string) bool {
	if err := checkBundlePath(file); err != nil {
		v.add(p, fmt.Sprintf("bundle path %q %v", file, err))
		return false
	}
	if !v.exists(file) {
		v.add(p, fmt.Sprintf("%q is not in the bundle", file))
		return false
	}
	return true
}

func (v *validator) uiFile(p, file string) {
	if !strings.HasPrefix(file, "ui/") {
		v.add(p, fmt.Sprintf("%q must be under ui/", file))
		return
	}
	v.bundleFile(p, file)
}
