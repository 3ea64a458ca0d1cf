package main

// Registry commands (SPEC §10, §7.3): publish, install, upgrade, enable,
// disable, uninstall, secrets set|unset, revoke and list.
//
// Choices the spec leaves open, also described in README.md:
//   - The registry is --registry, else $EXTEDGE_REGISTRY, else
//     http://127.0.0.1:7070. The token is the whole file named by
//     --token-file (else $EXTEDGE_TOKEN_FILE), trimmed, else $EXTEDGE_TOKEN.
//   - An https:// registry is verified against the system roots, or only
//     against the CA certificates in --ca-file (else $EXTEDGE_CA_FILE), for
//     a registryd serving --tls-cert from a private CA.
//   - A registry error is one line "extctl: <code>: <message> (<details>)",
//     where invalid_manifest lists its issues and invalid_bundle its rule;
//     with --json it is {"error":{"code","message","details"}} (errors.go).
//   - uninstall asks on a terminal and otherwise needs --yes.
//   - --grant and --egress are repeatable and also accept comma-separated
//     lists; a single empty value (--grant '') clears the list. Lists and
//     config that are not given keep the install's current value.
//   - --config k=v sets top-level key k. v is parsed as JSON when it is
//     valid JSON (numbers, true, objects…), else taken as a string. The
//     given pairs replace the install's whole config.
//   - upgrade refuses to create an install and needs --version; new
//     capabilities the version declares stay ungranted until --grant.
//   - secrets set takes KEY=VALUE, KEY=@FILE or KEY=- (stdin, once); one
//     trailing newline of a file or stdin is dropped; empty values are
//     refused (secrets unset deletes). Values are never printed.

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
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/extedge/extedge/internal/manifest"
	"github.com/extedge/extedge/internal/registryapi"
	"github.com/extedge/extedge/internal/secretbox"
	"github.com/extedge/extedge/internal/tlsconf"
)

// DefaultRegistry is the registry URL when neither --registry nor
// $EXTEDGE_REGISTRY is set (registryd's default listen address).
const DefaultRegistry = "http://127.0.0.1:7070"

// progressThreshold is the bundle size above which publish shows a
// progress bar (when stderr is a terminal).
const progressThreshold = 1 << 20

// registryFlags are the flags every registry command takes.
type registryFlags struct {
	url       string
	tokenFile string
	caFile    string
	timeout   time.Duration
	asJSON    *bool
}

func addRegistryFlags(fs *flagSet, timeout time.Duration) *registryFlags {
	f := new(registryFlags)
	fs.StringVar(&f.url, "registry", DefaultRegistry, "registry base `URL`")
	fs.bindEnv("registry", "EXTEDGE_REGISTRY")
	fs.StringVar(&f.tokenFile, "token-file", "", "`FILE` holding the admin token (without it, the token in $EXTEDGE_TOKEN)")
	fs.bindEnv("token-file", "EXTEDGE_TOKEN_FILE")
	fs.StringVar(&f.caFile, "ca-file", "", "`PEM` CA certificates to verify an https:// registry with, instead of the system roots")
	fs.bindEnv("ca-file", "EXTEDGE_CA_FILE")
	fs.DurationVar(&f.timeout, "timeout", timeout, "give up after this `DURATION`")
	f.asJSON = fs.jsonFlag()
	return f
}

// loadToken returns the admin token: the whole token file, trimmed, else
// $EXTEDGE_TOKEN.
func loadToken(tokenFile string) (string, error) {
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return "", fmt.Errorf("reading token file: %v", err)
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return "", fmt.Errorf("token file %s is empty", tokenFile)
		}
		return tok, nil
	}
	if tok := strings.TrimSpace(os.Getenv("EXTEDGE_TOKEN")); tok != "" {
		return tok, nil
	}
	return "", errors.New("no registry token: pass --token-file F (or set EXTEDGE_TOKEN_FILE or EXTEDGE_TOKEN)")
}

// checkRegistryURL accepts http and https URLs with a host.
func checkRegistryURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usageError{fmt.Sprintf("--registry %q must be an http:// or https:// URL", raw)}
	}
	return nil
}

// session is one registry command's client and context.
type session struct {
	client  *registryapi.Client
	ctx     context.Context
	cancel  context.CancelFunc
	timeout time.Duration
}

func (f *registryFlags) session() (*session, error) {
	if err := checkRegistryURL(f.url); err != nil {
		return nil, err
	}
	tok, err := loadToken(f.tokenFile)
	if err != nil {
		return nil, err
	}
	tlsConfig, err := tlsconf.Client(f.caFile)
	if err != nil {
		return nil, err
	}
	var hc *http.Client
	if tlsConfig != nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = tlsConfig
		hc = &http.Client{Transport: tr}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	cancel := stop
	if f.timeout > 0 {
		var tcancel context.CancelFunc
		ctx, tcancel = context.WithTimeout(ctx, f.timeout)
		cancel = func() { tcancel(); stop() }
	}
	return &session{client: registryapi.New(f.url, tok, hc), ctx: ctx, cancel: cancel, timeout: f.timeout}, nil
}

// wrap turns a client error into the one-line form: API errors as
// "<code>: <message> (<details>)", transport errors naming the registry.
func (s *session) wrap(err error) error {
	if err == nil {
		return nil
	}
	var ae *registryapi.APIError
	if errors.As(err, &ae) {
		return &apiError{ae}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &codedError{codeTimeout, fmt.Sprintf("the registry at %s did not answer within %s (see --timeout)", s.client.BaseURL(), s.timeout)}
	}
	if errors.Is(err, context.Canceled) {
		return &codedError{codeInterrupted, "interrupted"}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return &codedError{codeRegistryUnreachable, fmt.Sprintf("cannot reach the registry at %s: %v", s.client.BaseURL(), ue.Err)}
	}
	return err
}

// apiError prints a registry error reply as one line.
type apiError struct{ *registryapi.APIError }

func (e *apiError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	line := e.Code + ": " + oneLine(msg)
	if d := formatDetails(e.Details); d != "" {
		line += " (" + d + ")"
	}
	return line
}

func (e *apiError) Unwrap() error { return e.APIError }

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// formatDetails renders an error's details on one line: manifest issues
// as "path: message; …", everything else as sorted key=value pairs.
func formatDetails(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return "details: " + oneLine(string(raw))
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	if rawIssues, ok := obj["issues"]; ok {
		var issues []manifest.Issue
		if json.Unmarshal(rawIssues, &issues) == nil {
			is := make([]string, len(issues))
			for i, x := range issues {
				is[i] = oneLine(x.Path + ": " + x.Message)
			}
			parts = append(parts, strings.Join(is, "; "))
			keys = slices.DeleteFunc(keys, func(k string) bool { return k == "issues" })
		}
	}
	for _, k := range keys {
		var s string
		if json.Unmarshal(obj[k], &s) != nil {
			s = string(obj[k])
		}
		parts = append(parts, k+"="+oneLine(s))
	}
	return strings.Join(parts, "; ")
}

// ---- publish ----

func publishCmd(fs *flagSet) runFunc {
	sigPath := fs.String("signature", "", "detached `SIGNATURE` file (default: SIGNATURE beside the bundle, if present)")
	unsigned := fs.Bool("unsigned", false, "publish without a signature (only a registry run with --allow-unsigned accepts it)")
	rf := addRegistryFlags(fs, 0)
	return func(c *cli, pos []string) error {
		if len(pos) != 1 {
			return usageError{"publish needs one BUNDLE"}
		}
		bundlePath := pos[0]
		if *unsigned && *sigPath != "" {
			return usageError{"--signature and --unsigned exclude each other"}
		}
		if !*unsigned && *sigPath == "" {
			beside := filepath.Join(filepath.Dir(bundlePath), "SIGNATURE")
			if _, err := os.Stat(beside); err != nil {
				return usageError{"publish needs --signature SIGNATURE (extctl sign writes one), or --unsigned"}
			}
			*sigPath = beside
		}
		var sigJSON []byte
		if *sigPath != "" {
			var err error
			if sigJSON, err = os.ReadFile(*sigPath); err != nil {
				return fmt.Errorf("reading signature: %v", err)
			}
		}
		f, err := os.Open(bundlePath)
		if err != nil {
			return fmt.Errorf("opening bundle: %v", err)
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("bundle %s is not a regular file", bundlePath)
		}
		s, err := rf.session()
		if err != nil {
			return err
		}
		defer s.cancel()

		var body io.Reader = f
		var bar *progressbar.ProgressBar
		if c.isTerminal && fi.Size() > progressThreshold {
			bar = progressbar.NewOptions64(fi.Size(),
				progressbar.OptionSetWriter(c.stderr),
				progressbar.OptionSetDescription("uploading "+filepath.Base(bundlePath)),
				progressbar.OptionShowBytes(true),
				progressbar.OptionShowTotalBytes(true),
				progressbar.OptionSetWidth(30),
				progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionOnCompletion(func() { fmt.Fprintln(c.stderr) }),
			)
			body = &progressReader{r: f, bar: bar}
		}
		res, err := s.client.Publish(s.ctx, body, fi.Size(), sigJSON)
		if bar != nil && !bar.IsFinished() {
			_ = bar.Exit() // ends the bar's line before the error
		}
		if err != nil {
			return s.wrap(err)
		}
		if *rf.asJSON {
			return c.printJSON(publishOutput{Extension: res.Extension, Version: res.Version, ContentHash: res.ContentHash, Created: res.Created})
		}
		if res.Created {
			fmt.Fprintf(c.stdout, "published %s@%s by %s (%s)\n", res.Extension.Name, res.Version.Version, res.Extension.Publisher, res.ContentHash)
		} else {
			fmt.Fprintf(c.stdout, "%s@%s was already published with this content (%s); nothing changed\n", res.Extension.Name, res.Version.Version, res.ContentHash)
		}
		return nil
	}
}

// publishOutput is `extctl publish --json`: the registry's reply plus
// whether this call created the version (201) or found it (200).
type publishOutput struct {
	Extension   registryapi.ExtensionRef `json:"extension"`
	Version     registryapi.VersionRef   `json:"version"`
	ContentHash string                   `json:"content_hash"`
	Created     bool                     `json:"created"`
}

// progressReader advances a progress bar by the bytes read. Unlike
// progressbar.Reader it has no Close, so the HTTP transport closing the
// body after a failed upload does not fill the bar.
type progressReader struct {
	r   io.Reader
	bar *progressbar.ProgressBar
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	_ = p.bar.Add(n)
	return n, err
}

// ---- installs ----

// installFlags are the flags of install and upgrade.
type installFlags struct {
	tenant, extension, version string
	grants, config, egress     stringList
	platform                   *platformFlags
	rf                         *registryFlags
}

func addInstallFlags(fs *flagSet) *installFlags {
	f := new(installFlags)
	fs.StringVar(&f.tenant, "tenant", "", "tenant id `T`")
	fs.StringVar(&f.extension, "extension", "", "extension `NAME`")
	fs.StringVar(&f.version, "version", "", "`V`ersion to install (install default: the newest non-revoked)")
	fs.Var(&f.grants, "grant", "capability `CAP` to grant (repeatable or comma-separated; '' clears)")
	fs.Var(&f.config, "config", "config `k=v`, v parsed as JSON if valid, else a string (repeatable)")
	fs.Var(&f.egress, "egress", "allowed egress `HOST[:PORT]` (repeatable or comma-separated; '' clears)")
	f.platform = addPlatformFlags(fs)
	f.rf = addRegistryFlags(fs, time.Minute)
	return f
}

// check validates install and upgrade arguments.
func (f *installFlags) check(name string, pos []string) error {
	if len(pos) > 0 {
		return usageError{fmt.Sprintf("%s takes no arguments (got %q)", name, pos[0])}
	}
	if f.tenant == "" || f.extension == "" {
		return usageError{name + " needs --tenant and --extension"}
	}
	return f.platform.check()
}

// request builds the PUT body: lists and config not given stay nil so the
// registry keeps their current value.
func (f *installFlags) request() (registryapi.InstallRequest, error) {
	req := registryapi.InstallRequest{Version: f.version}
	req.GrantedCaps = splitList(f.grants)
	req.EgressAllowlist = splitList(f.egress)
	if len(f.config) > 0 {
		cfg, err := parseConfig(f.config)
		if err != nil {
			return req, err
		}
		req.Config = cfg
	}
	return req, nil
}

// splitList flattens repeated, comma-separated values. nil (flag not
// given) stays nil; a given but empty list becomes empty (clears).
func splitList(vals []string) []string {
	if vals == nil {
		return nil
	}
	out := []string{}
	for _, v := range vals {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" && !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}

// parseConfig turns k=v pairs into a JSON object. A value that is valid
// JSON is used as such, anything else as a string.
func parseConfig(pairs []string) (json.RawMessage, error) {
	obj := make(map[string]json.RawMessage, len(pairs))
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, usageError{fmt.Sprintf("--config %q is not key=value", p)}
		}
		if json.Valid([]byte(v)) {
			obj[k] = json.RawMessage(v)
		} else {
			b, _ := json.Marshal(v)
			obj[k] = b
		}
	}
	return json.Marshal(obj)
}

func installCmd(fs *flagSet) runFunc {
	f := addInstallFlags(fs)
	return func(c *cli, pos []string) error { return install(c, f, pos) }
}

func install(c *cli, f *installFlags, pos []string) error {
	if err := f.check("install", pos); err != nil {
		return err
	}
	req, err := f.request()
	if err != nil {
		return err
	}
	s, err := f.rf.session()
	if err != nil {
		return err
	}
	defer s.cancel()
	if f.platform.given() {
		cur, err := currentInstall(s, f.tenant, f.extension)
		if err != nil {
			return s.wrap(err)
		}
		if err := f.platform.apply(&req, cur); err != nil {
			return err
		}
	}
	in, err := s.client.PutInstall(s.ctx, f.tenant, f.extension, req)
	if err != nil {
		return s.wrap(err)
	}
	return c.showInstall(*f.rf.asJSON, fmt.Sprintf("installed %s@%s for tenant %s", in.Extension.Name, in.Version.Version, in.TenantID), in)
}

func upgradeCmd(fs *flagSet) runFunc {
	f := addInstallFlags(fs)
	return func(c *cli, pos []string) error { return upgrade(c, f, pos) }
}

func upgrade(c *cli, f *installFlags, pos []string) error {
	if err := f.check("upgrade", pos); err != nil {
		return err
	}
	if f.version == "" {
		return usageError{"upgrade needs --version V"}
	}
	req, err := f.request()
	if err != nil {
		return err
	}
	s, err := f.rf.session()
	if err != nil {
		return err
	}
	defer s.cancel()
	// upgrade changes an install; it never creates one.
	cur, err := s.client.GetInstall(s.ctx, f.tenant, f.extension)
	if err != nil {
		return s.wrap(err)
	}
	if err := f.platform.apply(&req, cur); err != nil {
		return err
	}
	in, err := s.client.PutInstall(s.ctx, f.tenant, f.extension, req)
	if err != nil {
		return s.wrap(err)
	}
	head := fmt.Sprintf("upgraded %s for tenant %s: %s -> %s", in.Extension.Name, in.TenantID, cur.Version.Version, in.Version.Version)
	if cur.Version.Version == in.Version.Version {
		head = fmt.Sprintf("%s for tenant %s is already at %s; settings updated", in.Extension.Name, in.TenantID, in.Version.Version)
	}
	return c.showInstall(*f.rf.asJSON, head, in)
}

// targetFlags are the flags of enable, disable and uninstall.
type targetFlags struct {
	tenant, ext string
	rf          *registryFlags
}

func addTargetFlags(fs *flagSet) *targetFlags {
	f := new(targetFlags)
	fs.StringVar(&f.tenant, "tenant", "", "tenant id `T`")
	fs.StringVar(&f.ext, "extension", "", "extension `NAME`")
	f.rf = addRegistryFlags(fs, time.Minute)
	return f
}

func (f *targetFlags) check(name string, pos []string) error {
	if len(pos) > 0 || f.tenant == "" || f.ext == "" {
		return usageError{name + " needs --tenant and --extension and no arguments"}
	}
	return nil
}

func enableCmd(fs *flagSet) runFunc {
	f := addTargetFlags(fs)
	return func(c *cli, pos []string) error { return setStatus(c, "enable", f, pos) }
}

func disableCmd(fs *flagSet) runFunc {
	f := addTargetFlags(fs)
	return func(c *cli, pos []string) error { return setStatus(c, "disable", f, pos) }
}

func setStatus(c *cli, name string, f *targetFlags, pos []string) error {
	if err := f.check(name, pos); err != nil {
		return err
	}
	tenant, ext, rf := f.tenant, f.ext, f.rf
	s, err := rf.session()
	if err != nil {
		return err
	}
	defer s.cancel()
	var in *registryapi.Install
	if name == "enable" {
		in, err = s.client.Enable(s.ctx, tenant, ext)
	} else {
		in, err = s.client.Disable(s.ctx, tenant, ext)
	}
	if err != nil {
		return s.wrap(err)
	}
	return c.showInstall(*rf.asJSON, fmt.Sprintf("%sd %s@%s for tenant %s", name, in.Extension.Name, in.Version.Version, in.TenantID), in)
}

func uninstallCmd(fs *flagSet) runFunc {
	f := addTargetFlags(fs)
	yes := fs.Bool("yes", false, "uninstall without asking; needed when stdin is not a terminal")
	return func(c *cli, pos []string) error { return uninstall(c, f, *yes, pos) }
}

func uninstall(c *cli, f *targetFlags, yes bool, pos []string) error {
	if err := f.check("uninstall", pos); err != nil {
		return err
	}
	tenant, ext, rf := f.tenant, f.ext, f.rf
	s, err := rf.session()
	if err != nil {
		return err
	}
	defer s.cancel()
	if !yes {
		if err := c.confirm(fmt.Sprintf("uninstall %s from tenant %s (deleting its secrets and stored data)", ext, tenant)); err != nil {
			return err
		}
	}
	if err := s.client.Uninstall(s.ctx, tenant, ext); err != nil {
		return s.wrap(err)
	}
	if *rf.asJSON {
		return c.printJSON(map[string]any{"tenant": tenant, "extension": ext, "uninstalled": true})
	}
	fmt.Fprintf(c.stdout, "uninstalled %s from tenant %s (its secrets and stored data are deleted)\n", ext, tenant)
	return nil
}

// confirm asks whether to do action (on stderr, answer on stdin). Without
// a terminal on stdin nobody can answer, so it refuses rather than guess:
// scripts pass --yes.
func (c *cli) confirm(action string) error {
	if !c.stdinTerminal {
		return &codedError{codeConfirmationRequired, "refusing to " + action + " without --yes: stdin is not a terminal, so extctl cannot ask"}
	}
	fmt.Fprintf(c.stderr, "%s%s? [y/N] ", strings.ToUpper(action[:1]), action[1:])
	answer, _ := bufio.NewReader(c.stdin).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(answer)) {
	case "y", "yes":
		return nil
	}
	return &codedError{codeAborted, "aborted; nothing was changed"}
}

// ungranted lists capabilities the installed version declares but the
// tenant has not granted.
func ungranted(in *registryapi.Install) []string {
	var out []string
	for _, d := range in.DeclaredCaps {
		if !slices.Contains(in.GrantedCaps, d) && !slices.Contains(manifest.AlwaysGranted, d) {
			out = append(out, d)
		}
	}
	return out
}

// showInstall prints an install: the JSON object, or a headline and a
// summary (secret keys only, never values).
func (c *cli) showInstall(asJSON bool, head string, in *registryapi.Install) error {
	if asJSON {
		return c.printJSON(in)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s)\n", head, in.Status)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  content hash\t%s\n", in.ContentHash)
	fmt.Fprintf(tw, "  capabilities\t%s\n", listOrNone(in.Capabilities))
	if ug := ungranted(in); len(ug) > 0 {
		fmt.Fprintf(tw, "  not granted\t%s (declared by %s; grant with --grant)\n", strings.Join(ug, ", "), in.Version.Version)
	}
	cfg := "{}"
	if len(in.Config) > 0 {
		cfg = string(in.Config)
	}
	fmt.Fprintf(tw, "  config\t%s\n", cfg)
	fmt.Fprintf(tw, "  egress\t%s\n", listOrNone(in.EgressAllowlist))
	fmt.Fprintf(tw, "  secrets\t%s\n", listOrNone(in.SecretKeys))
	if !in.Quotas.IsZero() {
		fmt.Fprintf(tw, "  quotas\t%s\n", formatQuotas(in.Quotas))
	}
	if in.InstanceReuse.Normalized().Enabled {
		fmt.Fprintf(tw, "  instance reuse\t%s\n", formatReuse(in.InstanceReuse))
	}
	tw.Flush()
	_, err := io.WriteString(c.stdout, b.String())
	return err
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "(none)"
	}
	return strings.Join(l, ", ")
}

// ---- secrets ----

// parseSecretArgs reads KEY=VALUE, KEY=@FILE and KEY=- (stdin) arguments.
// Errors name the argument's position or key, never its value.
func parseSecretArgs(args []string, stdin io.Reader) (map[string]string, []string, error) {
	out := make(map[string]string, len(args))
	var keys []string
	usedStdin := false
	for i, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			return nil, nil, usageError{fmt.Sprintf("argument %d is not KEY=VALUE (not shown: it may be a secret)", i+1)}
		}
		if !secretbox.ValidKey(k) {
			return nil, nil, usageError{fmt.Sprintf("invalid secret key %q: use "+secretbox.KeyRule, k)}
		}
		if _, dup := out[k]; dup {
			return nil, nil, usageError{fmt.Sprintf("secret %s is given twice", k)}
		}
		switch {
		case v == "-":
			if usedStdin {
				return nil, nil, usageError{"only one secret can be read from stdin (KEY=-)"}
			}
			usedStdin = true
			b, err := io.ReadAll(io.LimitReader(stdin, secretbox.MaxValueSize+2))
			if err != nil {
				return nil, nil, fmt.Errorf("reading secret %s from stdin: %v", k, err)
			}
			v = trimNewline(string(b))
		case strings.HasPrefix(v, "@"):
			b, err := os.ReadFile(v[1:])
			if err != nil {
				return nil, nil, fmt.Errorf("reading secret %s: %v", k, err)
			}
			v = trimNewline(string(b))
		}
		if v == "" {
			return nil, nil, fmt.Errorf("secret %s is empty (use extctl secrets unset %s to delete it)", k, k)
		}
		if len(v) > secretbox.MaxValueSize {
			return nil, nil, fmt.Errorf("secret %s is larger than %d bytes", k, secretbox.MaxValueSize)
		}
		out[k] = v
		keys = append(keys, k)
	}
	return out, keys, nil
}

func trimNewline(s string) string {
	s = strings.TrimSuffix(s, "\n")
	return strings.TrimSuffix(s, "\r")
}

func (f *targetFlags) checkSecrets(name string, pos []string) error {
	if f.tenant == "" || f.ext == "" || len(pos) == 0 {
		return usageError{name + " needs --tenant, --extension and at least one key"}
	}
	return nil
}

func secretsSetCmd(fs *flagSet) runFunc {
	f := addTargetFlags(fs)
	return func(c *cli, pos []string) error { return secretsSet(c, f, pos) }
}

func secretsSet(c *cli, f *targetFlags, pos []string) error {
	if err := f.checkSecrets("secrets set", pos); err != nil {
		return err
	}
	tenant, ext, rf := f.tenant, f.ext, f.rf
	values, keys, err := parseSecretArgs(pos, c.stdin)
	if err != nil {
		return err
	}
	return putSecrets(c, rf, tenant, ext, values, keys, "set")
}

func secretsUnsetCmd(fs *flagSet) runFunc {
	f := addTargetFlags(fs)
	return func(c *cli, pos []string) error { return secretsUnset(c, f, pos) }
}

func secretsUnset(c *cli, f *targetFlags, pos []string) error {
	if err := f.checkSecrets("secrets unset", pos); err != nil {
		return err
	}
	tenant, ext, rf := f.tenant, f.ext, f.rf
	values := make(map[string]string, len(pos))
	for _, k := range pos {
		if !secretbox.ValidKey(k) {
			return usageError{fmt.Sprintf("invalid secret key %q: use "+secretbox.KeyRule, k)}
		}
		values[k] = "" // an empty value deletes the key
	}
	return putSecrets(c, rf, tenant, ext, values, pos, "unset")
}

func putSecrets(c *cli, rf *registryFlags, tenant, ext string, values map[string]string, keys []string, verb string) error {
	s, err := rf.session()
	if err != nil {
		return err
	}
	defer s.cancel()
	in, err := s.client.PutSecrets(s.ctx, tenant, ext, values)
	if err != nil {
		return s.wrap(err)
	}
	all := in.SecretKeys
	if all == nil {
		all = []string{}
	}
	if *rf.asJSON {
		return c.printJSON(map[string]any{"tenant": tenant, "extension": ext, verb: keys, "secret_keys": all})
	}
	fmt.Fprintf(c.stdout, "%s %s on %s for tenant %s; secrets now: %s\n", verb, strings.Join(keys, ", "), ext, tenant, listOrNone(all))
	return nil
}

// ---- catalog ----

func revokeCmd(fs *flagSet) runFunc {
	ext := fs.String("extension", "", "extension `NAME`")
	version := fs.String("version", "", "`V`ersion to revoke")
	reason := fs.String("reason", "", "`R`eason, recorded and shown to admins")
	rf := addRegistryFlags(fs, time.Minute)
	return func(c *cli, pos []string) error {
		if len(pos) > 0 || *ext == "" || *version == "" || strings.TrimSpace(*reason) == "" {
			return usageError{"revoke needs --extension, --version and --reason"}
		}
		s, err := rf.session()
		if err != nil {
			return err
		}
		defer s.cancel()
		v, err := s.client.Revoke(s.ctx, *ext, *version, *reason)
		if err != nil {
			return s.wrap(err)
		}
		if *rf.asJSON {
			return c.printJSON(v)
		}
		fmt.Fprintf(c.stdout, "revoked %s@%s (%s): %s\n", *ext, v.Version, v.ContentHash, v.RevokeReason)
		return nil
	}
}

// deprecateCmd marks an extension deprecated (SPEC §7.3: the whole
// extension, not a version; a version is revoked instead).
func deprecateCmd(fs *flagSet) runFunc {
	ext := fs.String("extension", "", "extension `NAME`")
	reason := fs.String("reason", "", "`R`eason, shown in the catalog (e.g. what replaces it)")
	rf := addRegistryFlags(fs, time.Minute)
	return func(c *cli, pos []string) error {
		if len(pos) > 0 || *ext == "" || strings.TrimSpace(*reason) == "" {
			return usageError{"deprecate needs --extension and --reason"}
		}
		s, err := rf.session()
		if err != nil {
			return err
		}
		defer s.cancel()
		e, err := s.client.Deprecate(s.ctx, *ext, *reason)
		if err != nil {
			return s.wrap(err)
		}
		if *rf.asJSON {
			return c.printJSON(e)
		}
		fmt.Fprintf(c.stdout, "deprecated %s: %s\n", e.Name, oneLine(e.Deprecation.Reason))
		return nil
	}
}

func listCmd(fs *flagSet) runFunc {
	tenant := fs.String("tenant", "", "list tenant `T`'s installs instead of the catalog")
	rf := addRegistryFlags(fs, time.Minute)
	return func(c *cli, pos []string) error {
		if len(pos) > 0 {
			return usageError{"list takes no arguments"}
		}
		s, err := rf.session()
		if err != nil {
			return err
		}
		defer s.cancel()
		tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		if *tenant != "" {
			ins, err := s.client.ListInstalls(s.ctx, *tenant)
			if err != nil {
				return s.wrap(err)
			}
			if ins == nil {
				ins = []registryapi.Install{}
			}
			if *rf.asJSON {
				return c.printJSON(ins)
			}
			fmt.Fprintln(tw, "EXTENSION\tVERSION\tSTATUS\tCAPABILITIES\tSECRETS")
			for _, in := range ins {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", in.Extension.Name, in.Version.Version, in.Status, listOrNone(in.Capabilities), listOrNone(in.SecretKeys))
			}
			return tw.Flush()
		}
		exts, err := s.client.ListExtensions(s.ctx)
		if err != nil {
			return s.wrap(err)
		}
		if exts == nil {
			exts = []registryapi.Extension{}
		}
		if *rf.asJSON {
			return c.printJSON(exts)
		}
		fmt.Fprintln(tw, "EXTENSION\tPUBLISHER\tLATEST\tDEPRECATED")
		for _, e := range exts {
			dep := "-"
			if e.Deprecation != nil {
				dep = oneLine(e.Deprecation.Reason)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Name, e.Publisher, e.LatestVersion, dep)
		}
		return tw.Flush()
	}
}
