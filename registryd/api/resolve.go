package api

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/extedge/extedge/internal/manifest"
	"github.com/extedge/extedge/internal/tenantid"
	"github.com/extedge/extedge/registryd/store"
)

// resolve is GET /v1/resolve/{tenant}/{extension}.
//
// The ETag is computed from what the reply depends on (install id, its row
// version, the installed version, its secrets revision), not from the body:
// the secret envelope is re-sealed (fresh nonce, new expiry) only when a
// body is sent. Installs with secrets add an envelope epoch to the ETag:
// time is cut into windows of half the envelope lifetime, and an envelope
// sealed in window n expires at the end of window n+1. A cache that
// revalidates gets a new envelope as soon as the window changes, so a
// cached envelope always has at least half its lifetime left when its ETag
// is confirmed.
func (s *Server) resolve(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	if !tenantid.Valid(tenant) {
		writeCode(w, store.CodeInvalidRequest, "invalid tenant id", nil)
		return
	}
	name := r.PathValue("extension")
	if !manifest.ValidName(name) {
		writeCode(w, store.CodeNotInstalled, name+" is not installed for this tenant", nil)
		return
	}
	row, err := s.cfg.DB.Resolve(r.Context(), tenant, name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	now := s.now()
	half := s.cfg.EnvelopeTTL / 2
	var epoch int64
	hasSecrets := len(row.Secrets) > 0
	if hasSecrets {
		epoch = now.UnixNano() / int64(half)
	}
	etag := resolveETag(row, epoch)
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", "private, no-cache")
	if etagMatches(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	res := row.Resolved
	if hasSecrets {
		env, err := s.sealEnvelope(row, time.Unix(0, (epoch+2)*int64(half)))
		if err != nil {
			s.log.Error("sealing secret envelope failed; replying without secrets",
				zap.String("install_id", row.Resolved.InstallID), zap.Error(err))
		} else {
			res.SecretEnvelope = &env
			s.metrics.resolveSealed.Inc()
		}
	}
	writeJSON(w, http.StatusOK, &res)
}

func resolveETag(row *store.ResolveRow, epoch int64) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00%s\x00%s\x00%d\x00%d", row.Resolved.InstallID, row.RowVersion, row.Resolved.Version.ID,
		row.Resolved.ContentHash, row.SecretsRevision, epoch)
	return `"` + hex.EncodeToString(h.Sum(nil)[:16]) + `"`
}

// etagMatches implements If-None-Match (weak comparison, lists, "*").
func etagMatches(header, etag string) bool {
	if header == "" {
		return false
	}
	for _, part := range strings.Split(header, ",") {
		p := strings.TrimSpace(part)
		if p == "*" || strings.TrimPrefix(p, "W/") == etag {
			return true
		}
	}
	return false
}

// sealEnvelope opens the at-rest secrets and seals them for runners, bound
// to tenant, install and expiry.
func (s *Server) sealEnvelope(row *store.ResolveRow, expiry time.Time) (string, error) {
	if s.cfg.Keys == nil {
		return "", fmt.Errorf("no secrets key configured")
	}
	tenant, install := row.Resolved.TenantID, row.Resolved.InstallID
	plain := make(map[string]string, len(row.Secrets))
	for k, sealed := range row.Secrets {
		v, err := s.cfg.Keys.OpenAtRest(sealed, store.SecretAAD(tenant, install, k))
		if err != nil {
			return "", fmt.Errorf("opening secret %q: %v", k, err)
		}
		plain[k] = string(v)
	}
	return s.cfg.Keys.SealEnvelope(tenant, install, plain, expiry)
}
