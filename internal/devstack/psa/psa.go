// Package psa is the demo's stand-in for the PSA application: it serves a
// host page that mounts an extension with the JS SDK's host.js, mints
// short-lived session tokens (HS256 JWTs, as the real PSA would), and plays
// the vendor API that the sample extension syncs agreements from.
//
// It exists for `make demo` and the end-to-end test only; nothing in the
// product depends on it.
package psa

import (
	"crypto/subtle"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

//go:embed page.html
var pageFS embed.FS

var pageTmpl = template.Must(template.ParseFS(pageFS, "page.html"))

// Config wires the stand-in to the stack it fronts.
type Config struct {
	// SessionSecret signs the session JWTs (the gateway's `auth jwt
	// { secret_file … }` holds the same bytes).
	SessionSecret []byte
	Issuer        string // default "psa"
	Audience      string // default "extedge"
	TokenTTL      time.Duration
	// ExtensionID and ContentHash name the extension the host page mounts.
	ExtensionID string
	ContentHash string
	// VendorAPIKey is the key the vendor mock demands in X-Api-Key.
	VendorAPIKey string
}

var tenantRe = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// Handler returns the PSA stand-in: "/" host page, "/session" token
// minting, "/vendor/agreements" the vendor API.
func Handler(cfg Config) http.Handler {
	if cfg.Issuer == "" {
		cfg.Issuer = "psa"
	}
	if cfg.Audience == "" {
		cfg.Audience = "extedge"
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = 10 * time.Minute
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		tenant := tenantOf(r)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_ = pageTmpl.Execute(w, map[string]string{
			"Tenant": tenant, "ExtensionID": cfg.ExtensionID, "ContentHash": cfg.ContentHash,
		})
	})
	mux.HandleFunc("GET /session", func(w http.ResponseWriter, r *http.Request) {
		tok, exp, err := MintToken(cfg, tenantOf(r), "u-demo", cfg.ExtensionID, cfg.TokenTTL)
		if err != nil {
			http.Error(w, "minting token failed", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(map[string]any{"token": tok, "expires_at": exp.Unix()})
	})
	v := &vendor{key: cfg.VendorAPIKey}
	mux.HandleFunc("GET /vendor/agreements", v.list)
	mux.HandleFunc("GET /vendor/calls", v.calls)
	return mux
}

func tenantOf(r *http.Request) string {
	if t := r.URL.Query().Get("tenant"); tenantRe.MatchString(t) {
		return t
	}
	return "demo"
}

// MintToken returns a session JWT for tenant, as the PSA would issue it.
// The host page's /session hands the iframe a token scoped to its one
// extension (`ext` claim, SPEC §16) and short-lived; ext "" leaves the
// claim out, for tools that call several extensions. No token carries
// extension:debug.
func MintToken(cfg Config, tenant, user, ext string, ttl time.Duration) (string, time.Time, error) {
	exp := time.Now().Add(ttl).Truncate(time.Second)
	claims := jwt.MapClaims{
		"iss": cfg.Issuer, "aud": cfg.Audience, "sub": user,
		"tenant": tenant, "email": user + "@example.com", "name": "Demo User", "user_type": "internal",
		"perms": []string{"extension:read", "extension:write"},
		"iat":   time.Now().Unix(), "exp": exp.Unix(),
	}
	if ext != "" {
		claims["ext"] = ext
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(cfg.SessionSecret)
	return s, exp, err
}

// vendor is a tiny agreements API with a fixed data set, standing in for the
// third-party system the sample extension syncs from.
type vendor struct {
	key string
	mu  sync.Mutex
	n   int
}

func (v *vendor) list(w http.ResponseWriter, r *http.Request) {
	if subtle.ConstantTimeCompare([]byte(r.Header.Get("X-Api-Key")), []byte(v.key)) != 1 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error":"bad api key"}`)
		return
	}
	v.mu.Lock()
	v.n++
	v.mu.Unlock()
	type agreement struct {
		ID     string  `json:"id"`
		Client string  `json:"client"`
		Name   string  `json:"name"`
		Status string  `json:"status"`
		Amount float64 `json:"monthly_amount"`
	}
	clients := []string{"Northwind", "Contoso", "Fabrikam", "Tailspin", "Wingtip", "Litware", "Adatum"}
	plans := []string{"Managed Desktop", "Cloud Backup", "Network Care", "Security Plus", "M365 Support"}
	out := make([]agreement, 0, 23)
	for i := 1; i <= 23; i++ {
		status := "active"
		if i%7 == 0 {
			status = "expired"
		}
		out = append(out, agreement{
			ID:     "AGR-" + strconv.Itoa(1000+i),
			Client: clients[i%len(clients)],
			Name:   plans[i%len(plans)],
			Status: status,
			Amount: float64(150 + (i*37)%900),
		})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"agreements": out})
}

// calls reports how often the vendor API was called, for tests.
func (v *vendor) calls(w http.ResponseWriter, r *http.Request) {
	v.mu.Lock()
	n := v.n
	v.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"calls":%d}`, n)
}
