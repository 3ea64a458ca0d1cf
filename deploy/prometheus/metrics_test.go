// Package prometheus holds the Prometheus alert rules and scrape
// configuration of deploy/prometheus. Its test parses the rules strictly and
// checks that they, and the Grafana dashboard in deploy/grafana, name only
// metrics the code defines (SPEC §12).
package prometheus

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

// sourceDirs are where the daemons define their collectors.
var sourceDirs = []string{"../../caddymodule", "../../runnerd", "../../registryd"}

var (
	fullName      = regexp.MustCompile(`"(extedge_[a-z0-9_]*[a-z0-9])"`)
	namespaceName = regexp.MustCompile(`Namespace:\s*"extedge",\s*Name:\s*"([a-z0-9_]+)"`)
	prefixConcat  = regexp.MustCompile(`"(extedge_[a-z0-9_]+_)"\s*\+\s*[a-z]+`)
	prefixArg     = regexp.MustCompile(`\bd\("([a-z0-9_]+)",`)
)

// definedMetrics greps the Go sources (tests excluded) for metric names:
// full "extedge_…" literals, Namespace/Name pairs, and names built as
// prefix + d("suffix", …) (registryd's pool collector). Prefixes such as
// extedge_guest_ (guest-defined names) are returned separately.
func definedMetrics(t *testing.T) (names map[string]bool, prefixes []string) {
	t.Helper()
	names = map[string]bool{}
	for _, dir := range sourceDirs {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && (d.Name() == "testdata" || strings.HasSuffix(d.Name(), "test")) {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range fullName.FindAllStringSubmatch(string(src), -1) {
				names[m[1]] = true
			}
			for _, m := range namespaceName.FindAllStringSubmatch(string(src), -1) {
				names["extedge_"+m[1]] = true
			}
			for _, p := range prefixConcat.FindAllStringSubmatch(string(src), -1) {
				args := prefixArg.FindAllStringSubmatch(string(src), -1)
				if len(args) == 0 {
					prefixes = append(prefixes, p[1])
				}
				for _, a := range args {
					names[p[1]+a[1]] = true
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, must := range []string{"extedge_requests_total", "extedge_runner_invocations_total",
		"extedge_registry_http_requests_total", "extedge_registry_db_pool_acquired_connections"} {
		if !names[must] {
			t.Fatalf("the source scan found no %s: the scan is broken (found %d names)", must, len(names))
		}
	}
	return names, prefixes
}

// builtins are series Prometheus itself adds.
var builtins = []string{"up"}

var (
	metricToken = regexp.MustCompile(`\b(extedge_[a-z0-9_]+)\b`)
	selectorID  = regexp.MustCompile(`\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{`)
	promqlWords = []string{"sum", "by", "without", "rate", "increase", "histogram_quantile", "min", "max", "avg", "count", "and", "or", "unless", "on", "ignoring", "label_values"}
)

// unknownMetrics returns the metric names expr uses that the code does not
// define. Histogram series may carry _bucket, _sum and _count.
func unknownMetrics(expr string, names map[string]bool, prefixes []string) []string {
	known := func(n string) bool {
		if names[n] || slices.Contains(builtins, n) {
			return true
		}
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if names[strings.TrimSuffix(n, suf)] && strings.HasSuffix(n, suf) {
				return true
			}
		}
		for _, p := range prefixes {
			if strings.HasPrefix(n, p) {
				return true
			}
		}
		return false
	}
	// Label names and values inside {…} are not metrics.
	stripped := regexp.MustCompile(`\{[^}]*\}`).ReplaceAllString(expr, "{}")
	var unknown []string
	for _, m := range metricToken.FindAllStringSubmatch(stripped, -1) {
		if !known(m[1]) {
			unknown = append(unknown, m[1])
		}
	}
	for _, m := range selectorID.FindAllStringSubmatch(expr, -1) {
		if !strings.HasPrefix(m[1], "extedge_") && !slices.Contains(promqlWords, m[1]) && !known(m[1]) {
			unknown = append(unknown, m[1])
		}
	}
	return unknown
}

func TestUnknownMetricIsReported(t *testing.T) {
	names := map[string]bool{"extedge_requests_total": true, "extedge_request_duration_seconds": true}
	for _, tc := range []struct {
		name, expr string
		unknown    []string
	}{
		{"defined counter passes", `rate(extedge_requests_total{code="ok"}[5m])`, nil},
		{"histogram bucket of a defined histogram passes", `histogram_quantile(0.9, rate(extedge_request_duration_seconds_bucket[5m]))`, nil},
		{"misspelled metric is reported", `rate(extedge_request_total[5m])`, []string{"extedge_request_total"}},
		{"foreign metric is reported", `rate(http_requests_total{job="x"}[5m])`, []string{"http_requests_total"}},
		{"prometheus' up passes", `up{job="x"} == 0`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := unknownMetrics(tc.expr, names, nil); !slices.Equal(got, tc.unknown) {
				t.Errorf("unknownMetrics(%q) = %v, want %v", tc.expr, got, tc.unknown)
			}
		})
	}
}

// ruleFile is the Prometheus rule file format, decoded with unknown fields
// rejected.
type ruleFile struct {
	Groups []struct {
		Name     string `yaml:"name"`
		Interval string `yaml:"interval"`
		Rules    []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func TestAlertRules(t *testing.T) {
	f, err := os.Open("alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	var rf ruleFile
	if err := dec.Decode(&rf); err != nil {
		t.Fatalf("alerts.yaml: %v", err)
	}
	if len(rf.Groups) == 0 {
		t.Fatal("alerts.yaml has no groups")
	}
	names, prefixes := definedMetrics(t)
	seen := map[string]bool{}
	severities := []string{"critical", "warning", "info"}
	for _, g := range rf.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("group %q: needs a name and rules", g.Name)
		}
		for _, r := range g.Rules {
			id := g.Name + "/" + r.Alert
			if r.Alert == "" {
				t.Errorf("%s: only alerting rules here (alert: missing)", g.Name)
			}
			if seen[r.Alert] {
				t.Errorf("%s: duplicate alert name", id)
			}
			seen[r.Alert] = true
			if strings.TrimSpace(r.Expr) == "" {
				t.Errorf("%s: empty expr", id)
			}
			if strings.Count(r.Expr, "(") != strings.Count(r.Expr, ")") || strings.Count(r.Expr, "{") != strings.Count(r.Expr, "}") {
				t.Errorf("%s: unbalanced brackets in %q", id, r.Expr)
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for %q: %v", id, r.For, err)
				}
			}
			if !slices.Contains(severities, r.Labels["severity"]) {
				t.Errorf("%s: severity label %q, want one of %v", id, r.Labels["severity"], severities)
			}
			if r.Annotations["summary"] == "" {
				t.Errorf("%s: no summary annotation", id)
			}
			if u := unknownMetrics(r.Expr, names, prefixes); len(u) > 0 {
				t.Errorf("%s: expr uses metrics the code does not define: %v", id, u)
			}
		}
	}
}

// dashboard is the part of a Grafana dashboard JSON the test reads.
type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID      int     `json:"id"`
	Type    string  `json:"type"`
	Title   string  `json:"title"`
	Panels  []panel `json:"panels"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

func TestGrafanaDashboard(t *testing.T) {
	data, err := os.ReadFile("../grafana/extedge.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("deploy/grafana/extedge.json: %v", err)
	}
	if d.UID == "" || d.Title == "" {
		t.Error("dashboard needs a uid and a title")
	}
	names, prefixes := definedMetrics(t)
	used := map[string]bool{}
	ids := map[int]bool{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel %q: duplicate id %d", p.Title, p.ID)
			}
			ids[p.ID] = true
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no queries", p.Title)
			}
			for _, tg := range p.Targets {
				if u := unknownMetrics(tg.Expr, names, prefixes); len(u) > 0 {
					t.Errorf("panel %q query %s uses metrics the code does not define: %v", p.Title, tg.RefID, u)
				}
				for _, m := range metricToken.FindAllString(tg.Expr, -1) {
					used[m] = true
				}
			}
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if q, ok := v.Query.(string); ok {
			if u := unknownMetrics(q, names, prefixes); len(u) > 0 {
				t.Errorf("variable %s uses metrics the code does not define: %v", v.Name, u)
			}
		}
	}
	t.Logf("dashboard: %d panels, %d distinct extedge series of %d defined", len(ids), len(used), len(names))
}
