package tlsconf

import (
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/extedge/extedge/internal/testenv"
)

func TestServerAndClientTalkOverARealCA(t *testing.T) {
	dir := t.TempDir()
	ca := testenv.WriteTestCA(t, dir)
	cfg, err := Server(ca.CertFile, ca.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	client, err := Client(ca.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: client}, Timeout: 5 * time.Second}
	resp, err := hc.Get("https://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatalf("client trusting the CA: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "ok" {
		t.Fatalf("body %q", body)
	}

	// Without the CA the same server is refused: the test would pass
	// trivially if the client skipped verification.
	plain := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
	if _, err := plain.Get("https://" + ln.Addr().String() + "/"); err == nil {
		t.Fatal("a client with system roots trusted the test CA")
	}
}

func TestErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	ca := testenv.WriteTestCA(t, dir)
	junk := filepath.Join(dir, "junk.pem")
	os.WriteFile(junk, []byte("not pem"), 0o600)
	missing := filepath.Join(dir, "missing.pem")
	tests := []struct {
		name string
		run  func() error
		want string
	}{
		{"missing ca file", func() error { _, err := Client(missing); return err }, missing},
		{"ca file without a certificate", func() error { _, err := Client(junk); return err }, junk},
		{"key given as ca file", func() error { _, err := Client(ca.KeyFile); return err }, ca.KeyFile},
		{"missing cert", func() error { _, err := Server(missing, ca.KeyFile); return err }, missing},
		{"missing key", func() error { _, err := Server(ca.CertFile, missing); return err }, missing},
		{"unparsable cert", func() error { _, err := Server(junk, ca.KeyFile); return err }, junk},
		{"cert without key", func() error { _, err := Server(ca.CertFile, ""); return err }, "--tls-key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to name %q", err, tt.want)
			}
		})
	}
	if c, err := Server("", ""); c != nil || err != nil {
		t.Fatalf("no files: %v %v, want plain", c, err)
	}
	if c, err := Client(""); c != nil || err != nil {
		t.Fatalf("no ca file: %v %v, want system roots", c, err)
	}
}
