// Package kubernetes holds the Kubernetes manifests of deploy/kubernetes and
// the test that decodes them strictly and checks the deployment rules
// (SPEC §12, issue 15): restricted security contexts, HTTP probes, native
// runner sidecars that outlive Caddy's drain, per-component Secrets, pinned
// images, resources, PodDisruptionBudgets and NetworkPolicies.
package kubernetes

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	yamlv3 "go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// manifests is every object of every *.yaml file here, decoded strictly.
type manifests struct {
	deployments     []*appsv1.Deployment
	services        []*corev1.Service
	configMaps      map[string]*corev1.ConfigMap
	secrets         map[string]*corev1.Secret
	pdbs            []*policyv1.PodDisruptionBudget
	networkPolicies []*networkingv1.NetworkPolicy
}

// splitDocuments parses a YAML stream and returns each document re-encoded
// on its own. It rejects what strict Kubernetes decoders (kubeconform
// -strict, kubectl's server-side field validation) reject or silently
// resolve differently: anchors, aliases and merge keys, and duplicate keys.
func splitDocuments(data []byte) ([][]byte, error) {
	dec := yamlv3.NewDecoder(bytes.NewReader(data))
	var docs [][]byte
	for i := 0; ; i++ {
		var n yamlv3.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %v", i, err)
		}
		if err := checkNode(&n); err != nil {
			return nil, fmt.Errorf("document %d: %v", i, err)
		}
		if n.Kind == yamlv3.DocumentNode && len(n.Content) == 0 {
			continue // an empty document (a trailing ---)
		}
		out, err := yamlv3.Marshal(&n)
		if err != nil {
			return nil, fmt.Errorf("document %d: %v", i, err)
		}
		docs = append(docs, out)
	}
}

func checkNode(n *yamlv3.Node) error {
	if n.Anchor != "" {
		return fmt.Errorf("line %d: YAML anchor &%s (spell every object out)", n.Line, n.Anchor)
	}
	if n.Kind == yamlv3.AliasNode {
		return fmt.Errorf("line %d: YAML alias *%s (spell every object out)", n.Line, n.Value)
	}
	if n.Kind == yamlv3.MappingNode {
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Tag == "!!merge" || k.Value == "<<" {
				return fmt.Errorf("line %d: YAML merge key <<", k.Line)
			}
			if prev, dup := seen[k.Value]; dup {
				return fmt.Errorf("line %d: duplicate key %q (first on line %d)", k.Line, k.Value, prev)
			}
			seen[k.Value] = k.Line
		}
	}
	for _, c := range n.Content {
		if err := checkNode(c); err != nil {
			return err
		}
	}
	return nil
}

// decodeObject decodes one document into its typed Kubernetes object,
// rejecting unknown fields and unknown kinds.
func decodeObject(doc []byte) (any, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, err
	}
	var obj any
	switch tm.APIVersion + " " + tm.Kind {
	case "apps/v1 Deployment":
		obj = &appsv1.Deployment{}
	case "v1 Service":
		obj = &corev1.Service{}
	case "v1 ConfigMap":
		obj = &corev1.ConfigMap{}
	case "v1 Secret":
		obj = &corev1.Secret{}
	case "policy/v1 PodDisruptionBudget":
		obj = &policyv1.PodDisruptionBudget{}
	case "networking.k8s.io/v1 NetworkPolicy":
		obj = &networkingv1.NetworkPolicy{}
	default:
		return nil, fmt.Errorf("unexpected kind %q %q", tm.APIVersion, tm.Kind)
	}
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return nil, fmt.Errorf("%s: %v", tm.Kind, err)
	}
	return obj, nil
}

func loadManifests(t *testing.T) *manifests {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	m := &manifests{configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs, err := splitDocuments(data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for i, doc := range docs {
			obj, err := decodeObject(doc)
			if err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			switch o := obj.(type) {
			case *appsv1.Deployment:
				m.deployments = append(m.deployments, o)
			case *corev1.Service:
				m.services = append(m.services, o)
			case *corev1.ConfigMap:
				m.configMaps[o.Name] = o
			case *corev1.Secret:
				m.secrets[o.Name] = o
			case *policyv1.PodDisruptionBudget:
				m.pdbs = append(m.pdbs, o)
			case *networkingv1.NetworkPolicy:
				m.networkPolicies = append(m.networkPolicies, o)
			}
		}
	}
	if len(m.deployments) == 0 {
		t.Fatal("no Deployments decoded")
	}
	return m
}

// TestStrictDecodingRejects shows the decoder used below is strict: each
// case is a mistake the old gateway.yaml made or could make.
func TestStrictDecodingRejects(t *testing.T) {
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"anchor with merge-key override is rejected", `
apiVersion: v1
kind: ConfigMap
metadata: &m { name: a }
data: { x: "1" }
`, "anchor"},
		{"merge key is rejected", `
apiVersion: v1
kind: ConfigMap
metadata: { <<: { name: a } }
`, "merge key"},
		{"duplicate key is rejected", `
apiVersion: v1
kind: ConfigMap
metadata: { name: a }
metadata: { name: b }
`, "duplicate key"},
		{"unknown field is rejected", `
apiVersion: apps/v1
kind: Deployment
metadata: { name: a }
spec: { replica: 2 }
`, "unknown field"},
		{"unknown kind is rejected", `
apiVersion: v1
kind: Pod
metadata: { name: a }
`, "unexpected kind"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			docs, err := splitDocuments([]byte(tc.doc))
			if err == nil {
				_, err = decodeObject(docs[0])
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// allContainers returns every container of the pod: init containers (native
// sidecars among them) and regular containers. Long-running ones are regular
// containers and native sidecars (init containers with restartPolicy
// Always). Every one of them, and plain init containers too, is checked.
func allContainers(spec *corev1.PodSpec) []corev1.Container {
	return append(slices.Clone(spec.InitContainers), spec.Containers...)
}

func isSidecar(c corev1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

func TestManifestsDecodeStrictly(t *testing.T) {
	m := loadManifests(t)
	t.Logf("%d deployments, %d services, %d configmaps, %d secrets, %d pdbs, %d networkpolicies",
		len(m.deployments), len(m.services), len(m.configMaps), len(m.secrets), len(m.pdbs), len(m.networkPolicies))
}

func TestEveryContainerIsRestricted(t *testing.T) {
	m := loadManifests(t)
	for _, d := range m.deployments {
		pod := d.Spec.Template.Spec
		psc := pod.SecurityContext
		if psc == nil {
			psc = &corev1.PodSecurityContext{}
		}
		if pod.HostNetwork || pod.HostPID || pod.HostIPC {
			t.Errorf("%s: host namespaces", d.Name)
		}
		if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
			t.Errorf("%s: automountServiceAccountToken must be false (no component talks to the API server)", d.Name)
		}
		for _, v := range pod.Volumes {
			if v.HostPath != nil {
				t.Errorf("%s: hostPath volume %s", d.Name, v.Name)
			}
		}
		for _, c := range allContainers(&pod) {
			where := d.Name + "/" + c.Name
			sc := c.SecurityContext
			if sc == nil {
				t.Errorf("%s: no securityContext", where)
				continue
			}
			if !isTrue(sc.RunAsNonRoot) && !isTrue(psc.RunAsNonRoot) {
				t.Errorf("%s: runAsNonRoot not set", where)
			}
			if uid := firstInt(sc.RunAsUser, psc.RunAsUser); uid == nil || *uid == 0 {
				t.Errorf("%s: runAsUser must be a non-zero uid", where)
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Errorf("%s: allowPrivilegeEscalation must be false", where)
			}
			if isTrue(sc.Privileged) {
				t.Errorf("%s: privileged", where)
			}
			if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
				t.Errorf("%s: capabilities must drop ALL", where)
			} else if len(sc.Capabilities.Add) > 0 {
				t.Errorf("%s: adds capabilities %v", where, sc.Capabilities.Add)
			}
			seccomp := sc.SeccompProfile
			if seccomp == nil {
				seccomp = psc.SeccompProfile
			}
			if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("%s: seccompProfile must be RuntimeDefault", where)
			}
			if !isTrue(sc.ReadOnlyRootFilesystem) {
				t.Errorf("%s: readOnlyRootFilesystem must be true (writable paths are emptyDirs)", where)
			}
		}
	}
}

func TestImagesArePinned(t *testing.T) {
	m := loadManifests(t)
	for _, d := range m.deployments {
		for _, c := range allContainers(&d.Spec.Template.Spec) {
			img := c.Image
			if at := strings.Index(img, "@sha256:"); at >= 0 {
				continue // pinned by digest
			}
			name := img[strings.LastIndex(img, "/")+1:]
			tag, ok := "", false
			if i := strings.LastIndex(name, ":"); i >= 0 {
				tag, ok = name[i+1:], true
			}
			if !ok || tag == "" || tag == "latest" {
				t.Errorf("%s/%s: image %q is not pinned to a version tag or digest", d.Name, c.Name, img)
			}
		}
	}
}

func TestEveryContainerHasResources(t *testing.T) {
	m := loadManifests(t)
	for _, d := range m.deployments {
		for _, c := range allContainers(&d.Spec.Template.Spec) {
			where := d.Name + "/" + c.Name
			r := c.Resources
			if r.Requests.Cpu().IsZero() {
				t.Errorf("%s: no cpu request", where)
			}
			if r.Requests.Memory().IsZero() {
				t.Errorf("%s: no memory request", where)
			}
			if r.Limits.Memory().IsZero() {
				t.Errorf("%s: no memory limit", where)
			} else if r.Limits.Memory().Cmp(*r.Requests.Memory()) < 0 {
				t.Errorf("%s: memory limit below request", where)
			}
		}
	}
}

func TestProbesAreHTTP(t *testing.T) {
	m := loadManifests(t)
	for _, d := range m.deployments {
		pod := d.Spec.Template.Spec
		for _, c := range allContainers(&pod) {
			if !isSidecar(c) && slices.ContainsFunc(pod.InitContainers, func(ic corev1.Container) bool { return ic.Name == c.Name }) {
				continue // a run-to-completion init container has no probes
			}
			where := d.Name + "/" + c.Name
			for kind, p := range map[string]*corev1.Probe{"readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe} {
				if p == nil {
					t.Errorf("%s: no %s", where, kind)
					continue
				}
				if p.HTTPGet == nil {
					t.Errorf("%s: %s is not an HTTP probe", where, kind)
					continue
				}
				if !containerHasPort(c, p.HTTPGet.Port.String()) {
					t.Errorf("%s: %s port %s is not a port of the container", where, kind, p.HTTPGet.Port.String())
				}
			}
		}
	}
}

func containerHasPort(c corev1.Container, port string) bool {
	for _, p := range c.Ports {
		if p.Name == port || strconv.Itoa(int(p.ContainerPort)) == port {
			return true
		}
	}
	return false
}

func gatewayPod(t *testing.T, m *manifests) (*appsv1.Deployment, corev1.Container, []corev1.Container) {
	t.Helper()
	for _, d := range m.deployments {
		if d.Name != "extedge-gateway" {
			continue
		}
		var caddy *corev1.Container
		for i, c := range d.Spec.Template.Spec.Containers {
			if c.Name == "caddy" {
				caddy = &d.Spec.Template.Spec.Containers[i]
			}
		}
		if caddy == nil {
			t.Fatal("extedge-gateway has no caddy container")
		}
		var runners []corev1.Container
		for _, c := range d.Spec.Template.Spec.InitContainers {
			if strings.HasPrefix(c.Name, "runner-") {
				runners = append(runners, c)
			}
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if strings.HasPrefix(c.Name, "runner-") {
				t.Errorf("%s is a regular container: runners must be native sidecars (initContainers with restartPolicy: Always)", c.Name)
			}
		}
		if len(runners) == 0 {
			t.Fatal("extedge-gateway has no runner sidecars")
		}
		return d, *caddy, runners
	}
	t.Fatal("no extedge-gateway Deployment")
	panic("unreachable")
}

// flagValues returns the values of --name=value or --name value in args.
func flagValues(args []string, name string) []string {
	var vals []string
	for i, a := range args {
		switch {
		case strings.HasPrefix(a, "--"+name+"="):
			vals = append(vals, strings.TrimPrefix(a, "--"+name+"="))
		case a == "--"+name && i+1 < len(args):
			vals = append(vals, args[i+1])
		}
	}
	return vals
}

func TestRunnersOutliveCaddysDrain(t *testing.T) {
	m := loadManifests(t)
	d, caddy, runners := gatewayPod(t, m)
	caddyfile := gatewayCaddyfile(t, m)
	cfg := adaptCaddyfile(t, caddyfile)

	if d.Spec.Template.Spec.TerminationGracePeriodSeconds == nil {
		t.Fatal("gateway: no terminationGracePeriodSeconds")
	}
	term := time.Duration(*d.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second

	var preStop time.Duration
	if caddy.Lifecycle == nil || caddy.Lifecycle.PreStop == nil {
		t.Error("caddy: no preStop (endpoints must drop the pod before Caddy stops accepting)")
	} else if s := caddy.Lifecycle.PreStop.Sleep; s == nil || s.Seconds <= 0 {
		t.Error("caddy: preStop should be a sleep action (the image has no shell)")
	} else {
		preStop = time.Duration(s.Seconds) * time.Second
	}

	caddyGrace := time.Duration(cfg.Apps.HTTP.GracePeriod)
	if caddyGrace <= 0 {
		t.Error("Caddyfile: no grace_period (Caddy would wait forever for requests in flight)")
	}

	var maxRunnerGrace time.Duration
	for _, r := range runners {
		if !isSidecar(r) {
			t.Errorf("%s: restartPolicy must be Always (native sidecar: starts before and stops after Caddy)", r.Name)
		}
		if r.StartupProbe == nil || r.StartupProbe.HTTPGet == nil {
			t.Errorf("%s: no HTTP startupProbe (Caddy starts once it passes, so the socket exists)", r.Name)
		}
		g := flagValues(r.Args, "grace")
		if len(g) != 1 {
			t.Errorf("%s: set --grace explicitly (the default 30s is not below the termination period's budget)", r.Name)
			continue
		}
		grace, err := time.ParseDuration(g[0])
		if err != nil {
			t.Errorf("%s: --grace %q: %v", r.Name, g[0], err)
			continue
		}
		drain := 5 * time.Second // runnerd's default --drain-delay
		if d := flagValues(r.Args, "drain-delay"); len(d) == 1 {
			if drain, err = time.ParseDuration(d[0]); err != nil {
				t.Errorf("%s: --drain-delay %q: %v", r.Name, d[0], err)
				continue
			}
		}
		if drain+grace >= term {
			t.Errorf("%s: --drain-delay %v + --grace %v must be shorter than terminationGracePeriodSeconds %v", r.Name, drain, grace, term)
		}
		maxRunnerGrace = max(maxRunnerGrace, drain+grace)
	}
	if total := preStop + caddyGrace + maxRunnerGrace; total >= term {
		t.Errorf("preStop %v + Caddy grace_period %v + runner --drain-delay and --grace %v = %v, must be below terminationGracePeriodSeconds %v",
			preStop, caddyGrace, maxRunnerGrace, total, term)
	}
}

// TestCaddyfileMatchesThePod checks the configmap's Caddyfile against the
// gateway pod: every runner socket has a sidecar listening on it, every file
// it names is mounted into Caddy, its ops listener is what the probes hit
// and what the container publishes, and the admin API stays on localhost.
func TestCaddyfileMatchesThePod(t *testing.T) {
	m := loadManifests(t)
	_, caddy, runners := gatewayPod(t, m)
	caddyfile := gatewayCaddyfile(t, m)
	cfg := adaptCaddyfile(t, caddyfile)

	// Runner sockets.
	var listens []string
	for _, r := range runners {
		listens = append(listens, flagValues(r.Args, "listen")...)
	}
	sockets := regexp.MustCompile(`unix/(/\S+\.sock)`).FindAllStringSubmatch(caddyfile, -1)
	if len(sockets) != len(runners) {
		t.Errorf("Caddyfile names %d runner sockets, the pod has %d runners", len(sockets), len(runners))
	}
	for _, s := range sockets {
		if !slices.Contains(listens, "unix://"+s[1]) {
			t.Errorf("Caddyfile runner socket %s: no sidecar has --listen=unix://%s", s[1], s[1])
		}
		if !mountedAt(caddy, filepath.Dir(s[1])) {
			t.Errorf("runner socket directory %s is not mounted into caddy", filepath.Dir(s[1]))
		}
	}

	// Files the Caddyfile reads are mounted, and exist in their volume.
	pod := m.gatewayPodSpec(t)
	for _, p := range regexp.MustCompile(`/etc/extedge/\S+`).FindAllString(caddyfile, -1) {
		if err := m.fileVisible(pod, caddy, p); err != nil {
			t.Errorf("Caddyfile reads %s: %v", p, err)
		}
	}
	// And so do the runners' flags.
	for _, r := range runners {
		for _, flag := range []string{"token-file", "registry-token-file", "trust-bundle", "secrets-key-file"} {
			for _, p := range flagValues(r.Args, flag) {
				if err := m.fileVisible(pod, r, p); err != nil {
					t.Errorf("%s --%s %s: %v", r.Name, flag, p, err)
				}
			}
		}
	}

	// Listeners vs. published ports vs. probes.
	var published []int
	for _, p := range caddy.Ports {
		published = append(published, int(p.ContainerPort))
		if p.ContainerPort == 2019 {
			t.Error("caddy publishes 2019: the admin API can rewrite the config and must stay on localhost")
		}
	}
	if cfg.Admin.Listen != "" && !strings.HasPrefix(cfg.Admin.Listen, "localhost:") && !strings.HasPrefix(cfg.Admin.Listen, "127.0.0.1:") {
		t.Errorf("admin listens on %q, not localhost", cfg.Admin.Listen)
	}
	listenPorts := map[int]bool{}
	for name, srv := range cfg.Apps.HTTP.Servers {
		for _, l := range srv.Listen {
			port, err := strconv.Atoi(l[strings.LastIndex(l, ":")+1:])
			if err != nil {
				t.Fatalf("server %s listen %q: %v", name, l, err)
			}
			listenPorts[port] = true
			if !slices.Contains(published, port) {
				t.Errorf("Caddy listens on %d, the caddy container does not publish it", port)
			}
		}
	}
	for _, p := range published {
		if !listenPorts[p] {
			t.Errorf("caddy publishes %d, no Caddy server listens on it", p)
		}
	}
	for kind, p := range map[string]*corev1.Probe{"readiness": caddy.ReadinessProbe, "liveness": caddy.LivenessProbe} {
		if p == nil || p.HTTPGet == nil {
			continue // TestProbesAreHTTP reports it
		}
		port := portNumber(caddy, p.HTTPGet.Port.String())
		if port != opsPort(t, cfg) {
			t.Errorf("caddy %s probe hits port %d, the ops listener is %d", kind, port, opsPort(t, cfg))
		}
		if p.HTTPGet.Path != "/healthz" {
			t.Errorf("caddy %s probe path %q, want /healthz", kind, p.HTTPGet.Path)
		}
	}

	// The metrics Service scrapes the ops listener and every runner.
	var metricsSvc *corev1.Service
	for _, s := range m.services {
		if s.Labels["extedge.io/scrape"] == "true" && s.Spec.Selector["app"] == "extedge-gateway" {
			metricsSvc = s
		}
	}
	if metricsSvc == nil {
		t.Fatal("no Service labelled extedge.io/scrape=true for the gateway pod")
	}
	want := []string{"ops"}
	for _, r := range runners {
		for _, p := range r.Ports {
			want = append(want, p.Name)
		}
	}
	for _, name := range want {
		if !slices.ContainsFunc(metricsSvc.Spec.Ports, func(p corev1.ServicePort) bool { return p.TargetPort.String() == name }) {
			t.Errorf("Service %s does not scrape port %s", metricsSvc.Name, name)
		}
	}
}

func portNumber(c corev1.Container, port string) int {
	for _, p := range c.Ports {
		if p.Name == port || strconv.Itoa(int(p.ContainerPort)) == port {
			return int(p.ContainerPort)
		}
	}
	return -1
}

func mountedAt(c corev1.Container, dir string) bool {
	for _, vm := range c.VolumeMounts {
		if vm.MountPath == dir {
			return true
		}
	}
	return false
}

func (m *manifests) gatewayPodSpec(t *testing.T) *corev1.PodSpec {
	d, _, _ := gatewayPod(t, m)
	return &d.Spec.Template.Spec
}

// fileVisible reports whether path is inside one of c's mounts and, for
// Secret and ConfigMap volumes, names a key the volume projects.
func (m *manifests) fileVisible(pod *corev1.PodSpec, c corev1.Container, path string) error {
	for _, vm := range c.VolumeMounts {
		if !strings.HasPrefix(path, vm.MountPath+"/") {
			continue
		}
		rel := strings.TrimPrefix(path, vm.MountPath+"/")
		for _, v := range pod.Volumes {
			if v.Name != vm.Name {
				continue
			}
			keys := m.volumeFiles(v)
			if keys == nil || slices.Contains(keys, rel) {
				return nil
			}
			return fmt.Errorf("volume %s (mounted at %s) has no file %s (has %v)", v.Name, vm.MountPath, rel, keys)
		}
		return fmt.Errorf("mount %s has no volume", vm.Name)
	}
	return fmt.Errorf("not under any mount of %s", c.Name)
}

// volumeFiles lists the files a Secret or ConfigMap volume projects, or nil
// for other volumes (emptyDir: anything).
func (m *manifests) volumeFiles(v corev1.Volume) []string {
	var keys []string
	var items []corev1.KeyToPath
	switch {
	case v.Secret != nil:
		if s := m.secrets[v.Secret.SecretName]; s != nil {
			keys = slices.Sorted(mapKeys(s.StringData, s.Data))
		}
		items = v.Secret.Items
	case v.ConfigMap != nil:
		if cm := m.configMaps[v.ConfigMap.Name]; cm != nil {
			keys = slices.Sorted(mapKeys[string](cm.Data, nil))
		}
		items = v.ConfigMap.Items
	default:
		return nil
	}
	if len(items) == 0 {
		if keys == nil {
			return []string{}
		}
		return keys
	}
	var files []string
	for _, it := range items {
		if slices.Contains(keys, it.Key) {
			files = append(files, it.Path)
		}
	}
	return files
}

func mapKeys[V any](a map[string]string, b map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range a {
			if !yield(k) {
				return
			}
		}
		for k := range b {
			if !yield(k) {
				return
			}
		}
	}
}

// secretKeysSeen lists "secret/key" for every Secret key a container can
// read: through a mounted Secret volume (all keys unless items are listed)
// or an env/envFrom reference.
func (m *manifests) secretKeysSeen(pod *corev1.PodSpec, c corev1.Container) []string {
	var seen []string
	for _, vm := range c.VolumeMounts {
		for _, v := range pod.Volumes {
			if v.Name != vm.Name || v.Secret == nil {
				continue
			}
			s := m.secrets[v.Secret.SecretName]
			if len(v.Secret.Items) > 0 {
				for _, it := range v.Secret.Items {
					seen = append(seen, v.Secret.SecretName+"/"+it.Key)
				}
			} else {
				// A whole-Secret mount shows keys added to the Secret later.
				seen = append(seen, v.Secret.SecretName+"/*")
				if s != nil {
					for k := range mapKeys(s.StringData, s.Data) {
						seen = append(seen, s.Name+"/"+k)
					}
				}
			}
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			seen = append(seen, e.ValueFrom.SecretKeyRef.Name+"/"+e.ValueFrom.SecretKeyRef.Key)
		}
	}
	for _, ef := range c.EnvFrom {
		if ef.SecretRef != nil {
			seen = append(seen, ef.SecretRef.Name+"/*")
		}
	}
	return seen
}

func TestSecretsArePerComponent(t *testing.T) {
	m := loadManifests(t)
	// Keys that only the named containers may read; "*" is any key.
	rules := []struct {
		name     string
		key      string   // key (any Secret) that is restricted
		allowed  []string // deployment/container that may read it
		forbidOf string   // or: a Secret nobody but allowed may touch
	}{
		{name: "the secrets key opens every tenant secret", key: "secrets.key",
			allowed: []string{"extedge-gateway/runner-0", "extedge-gateway/runner-1", "extedge-registryd/registryd"}},
		{name: "the database URL carries the database password", key: "database-url",
			allowed: []string{"extedge-registryd/registryd"}},
		{name: "the read-write S3 access key", key: "s3-access-key", allowed: []string{"extedge-registryd/registryd"}},
		{name: "the read-write S3 secret key", key: "s3-secret-key", allowed: []string{"extedge-registryd/registryd"}},
		{name: "registryd's Secret", forbidOf: "extedge-registryd", allowed: []string{"extedge-registryd/registryd"}},
		{name: "the runners' Secret", forbidOf: "extedge-runner", allowed: []string{"extedge-gateway/runner-0", "extedge-gateway/runner-1"}},
		{name: "the gateway's Secret", forbidOf: "extedge-gateway", allowed: []string{"extedge-gateway/caddy"}},
	}
	for _, d := range m.deployments {
		pod := &d.Spec.Template.Spec
		for _, c := range allContainers(pod) {
			who := d.Name + "/" + c.Name
			seen := m.secretKeysSeen(pod, c)
			for _, s := range seen {
				if strings.HasSuffix(s, "/*") {
					t.Errorf("%s reads the whole Secret %s: list items / keys explicitly", who, strings.TrimSuffix(s, "/*"))
				}
				secret, key, _ := strings.Cut(s, "/")
				if _, ok := m.secrets[secret]; !ok {
					t.Errorf("%s reads Secret %s, which secrets.example.yaml does not define", who, secret)
				} else if k := m.secrets[secret]; key != "*" && !hasKey(k, key) {
					t.Errorf("%s reads %s, which Secret %s does not define", who, key, secret)
				}
				for _, r := range rules {
					hit := (r.key != "" && key == r.key) || (r.forbidOf != "" && secret == r.forbidOf)
					if hit && !slices.Contains(r.allowed, who) {
						t.Errorf("%s reads %s (%s): only %v may", who, s, r.name, r.allowed)
					}
				}
			}
		}
	}
	// The old single Secret must not come back.
	if _, ok := m.secrets["extedge-secrets"]; ok {
		t.Error("Secret extedge-secrets holds every component's keys: split it per component")
	}
}

func hasKey(s *corev1.Secret, key string) bool {
	if _, ok := s.StringData[key]; ok {
		return true
	}
	_, ok := s.Data[key]
	return ok
}

func TestDeploymentsHaveDisruptionBudgetsAndNetworkPolicies(t *testing.T) {
	m := loadManifests(t)
	for _, d := range m.deployments {
		podLabels := labels.Set(d.Spec.Template.Labels)
		var pdbs, policies int
		for _, p := range m.pdbs {
			sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
			if err != nil {
				t.Fatalf("PDB %s: %v", p.Name, err)
			}
			if sel.Matches(podLabels) {
				pdbs++
				if p.Spec.MaxUnavailable == nil && p.Spec.MinAvailable == nil {
					t.Errorf("PDB %s sets neither maxUnavailable nor minAvailable", p.Name)
				}
			}
		}
		for _, np := range m.networkPolicies {
			sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
			if err != nil {
				t.Fatalf("NetworkPolicy %s: %v", np.Name, err)
			}
			if sel.Matches(podLabels) && slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
				policies++
			}
		}
		if pdbs != 1 {
			t.Errorf("%s: %d PodDisruptionBudgets select its pods, want 1", d.Name, pdbs)
		}
		if policies == 0 {
			t.Errorf("%s: no ingress NetworkPolicy selects its pods", d.Name)
		}
		if d.Spec.Replicas != nil && *d.Spec.Replicas < 2 {
			t.Errorf("%s: %d replica(s): a PDB cannot keep one serving during a drain", d.Name, *d.Spec.Replicas)
		}
		if ru := d.Spec.Strategy.RollingUpdate; ru == nil || ru.MaxUnavailable == nil || ru.MaxUnavailable.IntValue() != 0 {
			t.Errorf("%s: rolling updates should set maxUnavailable: 0", d.Name)
		}
	}
}

func isTrue(b *bool) bool { return b != nil && *b }

func firstInt(vs ...*int64) *int64 {
	for _, v := range vs {
		if v != nil {
			return v
		}
	}
	return nil
}
