package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// caddyStartTimeout bounds how long Caddy may take to serve its config.
const caddyStartTimeout = 30 * time.Second

// CaddyServer is a real Caddy (./cmd/caddy: standard modules + extedge)
// child process serving one site on 127.0.0.1 over plain HTTP, with its
// admin API on another free port.
type CaddyServer struct {
	// URL is the site's base URL, http://127.0.0.1:PORT.
	URL string
	// Port is the site's port.
	Port int
	// AdminAddr is the admin API's host:port.
	AdminAddr string

	t    testing.TB
	dir  string
	proc *process
}

// Caddyfile returns a complete Caddyfile for site: global options binding
// everything to 127.0.0.1 (default_bind), the admin API on adminPort,
// automatic HTTPS off, no persisted config, storage in dir, and site as the
// body of the `:port` site block.
func Caddyfile(port, adminPort int, dir, site string) string {
	return fmt.Sprintf(`{
	admin 127.0.0.1:%d
	default_bind 127.0.0.1
	auto_https off
	persist_config off
	storage file_system %s
	grace_period 5s
}

:%d {
%s
}
`, adminPort, filepath.Join(dir, "storage"), port, site)
}

// Caddy builds ./cmd/caddy (once per test process), starts it with
// Caddyfile(…, site), waits until the site port accepts connections and
// the admin API answers, and stops it when t ends.
func Caddy(t testing.TB, site string) *CaddyServer {
	t.Helper()
	bin := Binary(t, "./cmd/caddy")
	s := &CaddyServer{t: t, dir: t.TempDir()}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err1 := freePort()
		admin, err2 := freePort()
		if err1 != nil || err2 != nil {
			t.Fatalf("testenv: finding a free port: %v %v", err1, err2)
		}
		s.Port, s.AdminAddr = port, net.JoinHostPort("127.0.0.1", strconv.Itoa(admin))
		s.URL = "http://127.0.0.1:" + strconv.Itoa(port)
		cfg := filepath.Join(s.dir, "Caddyfile")
		if err := os.WriteFile(cfg, []byte(Caddyfile(port, admin, s.dir, site)), 0o600); err != nil {
			t.Fatal(err)
		}
		env := []string{"XDG_DATA_HOME=" + filepath.Join(s.dir, "data"), "XDG_CONFIG_HOME=" + filepath.Join(s.dir, "config"), "HOME=" + s.dir}
		s.proc, lastErr = launch(bin, []string{"run", "--config", cfg, "--adapter", "caddyfile"}, env,
			filepath.Join(s.dir, "caddy.log"), caddyStartTimeout, s.ready)
		if lastErr == nil {
			t.Cleanup(s.Stop)
			return s
		}
		if !errors.Is(lastErr, errPortInUse) {
			break
		}
	}
	t.Fatalf("testenv: starting caddy: %v", lastErr)
	return nil
}

func (s *CaddyServer) ready() error {
	resp, err := http.Get("http://" + s.AdminAddr + "/config/")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("admin /config/: %s", resp.Status)
	}
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(s.Port), time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}

// Reload replaces the running config with Caddyfile(…, site) through the
// admin API's POST /load (Caddy's graceful config swap).
func (s *CaddyServer) Reload(site string) error {
	_, adminPort, _ := net.SplitHostPort(s.AdminAddr)
	ap, _ := strconv.Atoi(adminPort)
	body := Caddyfile(s.Port, ap, s.dir, site)
	req, err := http.NewRequest(http.MethodPost, "http://"+s.AdminAddr+"/load", bytes.NewReader([]byte(body)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/caddyfile")
	// Unchanged configs are skipped by Caddy; force a real reload.
	req.Header.Set("Cache-Control", "must-revalidate")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("caddy /load: %s: %s", resp.Status, b)
	}
	return nil
}

// Admin GETs path on the admin API and returns the body.
func (s *CaddyServer) Admin(path string) ([]byte, error) {
	resp, err := http.Get("http://" + s.AdminAddr + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return b, fmt.Errorf("admin %s: %s", path, resp.Status)
	}
	return b, err
}

// Log returns the tail of Caddy's output, for failure messages.
func (s *CaddyServer) Log() string { return s.proc.logTail() }

// Stop terminates Caddy; safe to call twice.
func (s *CaddyServer) Stop() {
	if s.proc != nil {
		s.proc.stop()
	}
}
