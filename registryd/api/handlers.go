package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/extedge/extedge/internal/bundle"
	"github.com/extedge/extedge/internal/manifest"
	"github.com/extedge/extedge/internal/registryapi"
	"github.com/extedge/extedge/internal/secretbox"
	"github.com/extedge/extedge/registryd/store"
)

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz is ready when the database answers within 2 s.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.cfg.DB.Ping(ctx); err != nil {
		writeCode(w, store.CodeDatabaseUnavailable, "database unreachable", nil)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// publishBundle is POST /v1/bundles.
func (s *Server) publishBundle(w http.ResponseWriter, r *http.Request) {
	// Large uploads on slow links: allow time for the body, per request.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(15 * time.Minute))
	body := http.MaxBytesReader(w, r.Body, s.cfg.Publish.MaxUpload()+1)
	res, err := s.cfg.Publish.Publish(r.Context(), body, r.ContentLength, r.Header.Get(registryapi.SignatureHeader))
	if err != nil {
		outcome := codeInternal
		var se *store.Error
		if errors.As(err, &se) {
			outcome = se.Code
		}
		s.metrics.publishes.WithLabelValues(outcome).Inc()
		s.writeError(w, r, err)
		return
	}
	status := http.StatusOK
	outcome := "existing"
	if res.Created {
		status, outcome = http.StatusCreated, "created"
		s.log.Info("bundle published", zap.String("extension", res.Extension.Name),
			zap.String("version", res.Version.Version), zap.String("content_hash", res.ContentHash))
	}
	s.metrics.publishes.WithLabelValues(outcome).Inc()
	writeJSON(w, status, res)
}

func (s *Server) listExtensions(w http.ResponseWriter, r *http.Request) {
	out, err := s.cfg.DB.ListExtensions(r.Context())
	s.reply(w, r, out, err)
}

// reply writes out as a 200 JSON reply, or err as an API error.
func (s *Server) reply(w http.ResponseWriter, r *http.Request, out any, err error) {
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// installParams validates {tenant} and {name} of an install route.
func (s *Server) installParams(w http.ResponseWriter, r *http.Request) (tenant, name string, ok bool) {
	if tenant, ok = s.tenantParam(w, r); !ok {
		return "", "", false
	}
	if name, ok = nameParam(w, r, "name"); !ok {
		return "", "", false
	}
	return tenant, name, true
}

// nameParam validates {name} (§4 name rules); an invalid name cannot exist.
func nameParam(w http.ResponseWriter, r *http.Request, key string) (string, bool) {
	n := r.PathValue(key)
	if !manifest.ValidName(n) {
		writeCode(w, store.CodeNotFound, "no extension with that name", nil)
		return "", false
	}
	return n, true
}

func (s *Server) getExtension(w http.ResponseWriter, r *http.Request) {
	name, ok := nameParam(w, r, "name")
	if !ok {
		return
	}
	out, err := s.cfg.DB.GetExtension(r.Context(), name)
	s.reply(w, r, out, err)
}

func (s *Server) listVersions(w http.ResponseWriter, r *http.Request) {
	name, ok := nameParam(w, r, "name")
	if !ok {
		return
	}
	out, err := s.cfg.DB.ListVersions(r.Context(), name)
	s.reply(w, r, out, err)
}

func (s *Server) getVersion(w http.ResponseWriter, r *http.Request) {
	name, ok := nameParam(w, r, "name")
	if !ok {
		return
	}
	out, err := s.cfg.DB.GetVersion(r.Context(), name, r.PathValue("version"))
	s.reply(w, r, out, err)
}

func (s *Server) deprecate(w http.ResponseWriter, r *http.Request) {
	name, ok := nameParam(w, r, "name")
	if !ok {
		return
	}
	var req registryapi.ReasonRequest
	if err := decodeJSON(w, r, maxJSONBody, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	out, err := s.cfg.DB.Deprecate(r.Context(), name, req.Reason)
	s.reply(w, r, out, err)
}

func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	name, ok := nameParam(w, r, "name")
	if !ok {
		return
	}
	var req registryapi.ReasonRequest
	if err := decodeJSON(w, r, maxJSONBody, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	out, err := s.cfg.DB.Revoke(r.Context(), name, r.PathValue("version"), req.Reason)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.log.Info("version revoked", zap.String("extension", name), zap.String("version", out.Version), zap.String("content_hash", out.ContentHash))
	writeJSON(w, http.StatusOK, out)
}

// installRequest mirrors registryapi.InstallRequest with pointers, so an
// absent or null list ("keep") differs from an empty one ("clear").
type installRequest struct {
	Version         string              `json:"version"`
	GrantedCaps     *[]string           `json:"granted_caps"`
	Config          json.RawMessage     `json:"config"`
	EgressAllowlist *[]string           `json:"egress_allowlist"`
	Quotas          *registryapi.Quotas `json:"quotas"`
	// InstanceReuse is true, false or the object (registryapi.InstanceReuse).
	InstanceReuse *registryapi.InstanceReuse `json:"instance_reuse"`
}

func (s *Server) putInstall(w http.ResponseWriter, r *http.Request) {
	tenant, name, ok := s.installParams(w, r)
	if !ok {
		return
	}
	var req installRequest
	if err := decodeJSON(w, r, maxJSONBody, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Version != "" && !manifest.ValidVersion(req.Version) {
		writeCode(w, store.CodeInvalidRequest, "version is not semver", nil)
		return
	}
	out, err := s.cfg.DB.PutInstall(r.Context(), tenant, name, store.InstallInput{
		Version: req.Version, GrantedCaps: req.GrantedCaps, Config: req.Config,
		EgressAllowlist: req.EgressAllowlist, Quotas: req.Quotas, InstanceReuse: req.InstanceReuse,
		PlatformAdmin: principalOf(r).Role == store.RolePlatformAdmin,
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getInstall(w http.ResponseWriter, r *http.Request) {
	tenant, name, ok := s.installParams(w, r)
	if !ok {
		return
	}
	out, err := s.cfg.DB.GetInstall(r.Context(), tenant, name)
	s.reply(w, r, out, err)
}

func (s *Server) listInstalls(w http.ResponseWriter, r *http.Request) {
	tenant, ok := s.tenantParam(w, r)
	if !ok {
		return
	}
	out, err := s.cfg.DB.ListInstalls(r.Context(), tenant)
	s.reply(w, r, out, err)
}

func (s *Server) setStatus(w http.ResponseWriter, r *http.Request, status string) {
	tenant, name, ok := s.installParams(w, r)
	if !ok {
		return
	}
	out, err := s.cfg.DB.SetInstallStatus(r.Context(), tenant, name, status)
	s.reply(w, r, out, err)
}

func (s *Server) enableInstall(w http.ResponseWriter, r *http.Request) {
	s.setStatus(w, r, registryapi.StatusEnabled)
}

func (s *Server) disableInstall(w http.ResponseWriter, r *http.Request) {
	s.setStatus(w, r, registryapi.StatusDisabled)
}

func (s *Server) deleteInstall(w http.ResponseWriter, r *http.Request) {
	tenant, name, ok := s.installParams(w, r)
	if !ok {
		return
	}
	if err := s.cfg.DB.DeleteInstall(r.Context(), tenant, name); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) putSecrets(w http.ResponseWriter, r *http.Request) {
	tenant, name, ok := s.installParams(w, r)
	if !ok {
		return
	}
	var req map[string]string
	if err := decodeJSON(w, r, maxJSONBody, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if len(req) == 0 {
		writeCode(w, store.CodeInvalidRequest, "no secrets given", nil)
		return
	}
	for k, v := range req {
		if !secretbox.ValidKey(k) {
			// Never echo values; keys are not secret.
			writeCode(w, store.CodeInvalidRequest, "invalid secret key (use "+secretbox.KeyRule+")", map[string]string{"key": k})
			return
		}
		if len(v) > secretbox.MaxValueSize {
			writeCode(w, store.CodeInvalidRequest, "secret value too large", map[string]string{"key": k})
			return
		}
	}
	if s.cfg.Keys == nil {
		writeCode(w, codeSecretsUnavailable, "registryd runs without --secrets-key-file; secrets cannot be stored", nil)
		return
	}
	keys := s.cfg.Keys
	out, err := s.cfg.DB.PutSecrets(r.Context(), tenant, name, req, func(installID, key, value string) string {
		return keys.SealAtRest([]byte(value), store.SecretAAD(tenant, installID, key))
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) bundleStatus(w http.ResponseWriter, r *http.Request) {
	hash := r.PathValue("hash")
	if !bundle.ValidHash(hash) {
		writeCode(w, store.CodeInvalidRequest, "content hash must be sha256:<64 lowercase hex>", nil)
		return
	}
	ext := r.URL.Query().Get("extension")
	if !manifest.ValidName(ext) {
		writeCode(w, store.CodeInvalidRequest, "extension query parameter must be a valid extension name", nil)
		return
	}
	st, err := s.cfg.DB.BundleStatus(r.Context(), hash, ext)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// maxStorageBody fits a 256 KiB value, JSON-escaped, with room to spare.
const maxStorageBody = 2 << 20

func (s *Server) storage(w http.ResponseWriter, r *http.Request) {
	var req registryapi.StorageRequest
	if err := decodeJSON(w, r, maxStorageBody, &req); err != nil {
		s.metrics.kvOps.WithLabelValues("invalid", "invalid_request").Inc()
		s.writeError(w, r, err)
		return
	}
	resp, err := s.cfg.DB.Storage(r.Context(), req, s.cfg.KVQuota)
	op := req.Op
	switch op {
	case registryapi.StorageGet, registryapi.StoragePut, registryapi.StorageDelete, registryapi.StorageList:
	default:
		op = "invalid"
	}
	if err != nil {
		outcome := codeInternal
		var se *store.Error
		if errors.As(err, &se) {
			outcome = se.Code
		}
		s.metrics.kvOps.WithLabelValues(op, outcome).Inc()
		s.writeError(w, r, err)
		return
	}
	s.metrics.kvOps.WithLabelValues(op, "ok").Inc()
	writeJSON(w, http.StatusOK, resp)
}

// maxExecutionBody bounds one batch of execution records.
const maxExecutionBody = 16 << 20

func (s *Server) executions(w http.ResponseWriter, r *http.Request) {
	var req registryapi.ExecutionBatch
	if err := decodeJSON(w, r, maxExecutionBody, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.cfg.DB.InsertExecutions(r.Context(), req.Records); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.metrics.executions.Add(float64(len(req.Records)))
	writeJSON(w, http.StatusAccepted, map[string]int{"accepted": len(req.Records)})
}
