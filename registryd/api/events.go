package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/extedge/extedge/internal/registryapi"
	"github.com/extedge/extedge/registryd/store"
)

// maxEventBody fits a payload of registryapi.MaxEventPayload with the
// other fields; a larger body is payload_too_large before it is parsed.
const maxEventBody = registryapi.MaxEventPayload + 64<<10

// publishEvent is POST /v1/events (§18): 202 with the number of
// deliveries created, or 200 with the first answer for a repeated id.
func (s *Server) publishEvent(w http.ResponseWriter, r *http.Request) {
	var ev registryapi.Event
	if err := decodeJSON(w, r, maxEventBody, &ev); err != nil {
		s.writeError(w, r, err)
		return
	}
	res, created, err := s.cfg.DB.PublishEvent(r.Context(), ev, s.now(), s.cfg.Delivery.MaxAttempts)
	if err != nil {
		s.metrics.eventsPublished.WithLabelValues(outcomeOf(err)).Inc()
		s.writeError(w, r, err)
		return
	}
	status := http.StatusOK
	outcome := "duplicate"
	if created {
		status, outcome = http.StatusAccepted, "created"
		s.metrics.deliveriesCreated.Add(float64(res.Deliveries))
		if ce := s.log.Check(zap.DebugLevel, "event published"); ce != nil {
			ce.Write(zap.String("topic", ev.Topic), zap.Int("deliveries", res.Deliveries))
		}
	}
	s.metrics.eventsPublished.WithLabelValues(outcome).Inc()
	writeJSON(w, status, res)
}

// outcomeOf is an error's metrics label: its API code, else internal.
func outcomeOf(err error) string {
	var se *store.Error
	if errors.As(err, &se) {
		return se.Code
	}
	return codeInternal
}

// leaseDeliveries is POST /v1/internal/deliveries/lease: runners take up
// to limit due deliveries, each held until lease_expires_at.
func (s *Server) leaseDeliveries(w http.ResponseWriter, r *http.Request) {
	var req registryapi.LeaseRequest
	if err := decodeJSON(w, r, maxJSONBody, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Limit == 0 {
		req.Limit = store.DefaultLeaseSize
	}
	lease := store.DefaultLease
	if req.LeaseSeconds != 0 {
		lease = time.Duration(req.LeaseSeconds) * time.Second
	}
	if req.Limit < 1 || req.Limit > store.MaxLeaseBatch {
		writeCode(w, store.CodeInvalidRequest, fmt.Sprintf("limit must be 1 to %d", store.MaxLeaseBatch), map[string]string{"field": "limit"})
		return
	}
	if lease < store.MinLease || lease > store.MaxLease {
		writeCode(w, store.CodeInvalidRequest, fmt.Sprintf("lease_seconds must be %d to %d", int(store.MinLease.Seconds()), int(store.MaxLease.Seconds())),
			map[string]string{"field": "lease_seconds"})
		return
	}
	res, err := s.cfg.DB.LeaseDeliveries(r.Context(), s.now(), req.Limit, lease)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	for _, attempts := range res.Expired {
		s.metrics.deliveryOutcomes.WithLabelValues(registryapi.DeliveryDead).Inc()
		s.metrics.deliveryAttempts.WithLabelValues(registryapi.DeliveryDead).Observe(float64(attempts))
	}
	out := registryapi.LeaseResponse{Deliveries: make([]registryapi.LeasedDelivery, 0, len(res.Leased))}
	for _, d := range res.Leased {
		out.Deliveries = append(out.Deliveries, d.LeasedDelivery)
		s.metrics.deliveryOutcomes.WithLabelValues(registryapi.DeliveryLeased).Inc()
		if d.Reclaimed {
			s.metrics.deliveryOutcomes.WithLabelValues("lease_expired").Inc()
		}
		s.metrics.deliveryLag.Observe(max(d.Lag, 0).Seconds())
	}
	writeJSON(w, http.StatusOK, out)
}

// completeDelivery is POST /v1/internal/deliveries/{id}/complete.
func (s *Server) completeDelivery(w http.ResponseWriter, r *http.Request) {
	var req registryapi.CompleteRequest
	if err := decodeJSON(w, r, maxJSONBody, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	out, err := s.cfg.DB.CompleteDelivery(r.Context(), r.PathValue("id"), req.LeaseID, s.now())
	if err == nil {
		s.observeOutcome(out)
	}
	s.reply(w, r, out, err)
}

// failDelivery is POST /v1/internal/deliveries/{id}/fail.
func (s *Server) failDelivery(w http.ResponseWriter, r *http.Request) {
	var req registryapi.FailRequest
	if err := decodeJSON(w, r, maxJSONBody, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	retryable := req.Retryable == nil || *req.Retryable
	out, err := s.cfg.DB.FailDelivery(r.Context(), r.PathValue("id"), req.LeaseID, retryable, req.Error, s.now(), s.cfg.Delivery, s.cfg.Rand())
	if err == nil {
		s.observeOutcome(out)
	}
	s.reply(w, r, out, err)
}

// observeOutcome counts what complete or fail did to a delivery.
func (s *Server) observeOutcome(out registryapi.DeliveryOutcome) {
	switch out.Status {
	case registryapi.DeliverySucceeded, registryapi.DeliveryDead:
		s.metrics.deliveryOutcomes.WithLabelValues(out.Status).Inc()
		s.metrics.deliveryAttempts.WithLabelValues(out.Status).Observe(float64(out.Attempts))
	case registryapi.DeliveryPending:
		s.metrics.deliveryOutcomes.WithLabelValues("retry_scheduled").Inc()
	}
}

// listDeliveries is GET /v1/tenants/{tenant}/installs/{name}/deliveries
// (?status=pending|leased|succeeded|dead, ?limit= 1…500, default 100).
func (s *Server) listDeliveries(w http.ResponseWriter, r *http.Request) {
	tenant, name, ok := s.installParams(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	limit := 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			writeCode(w, store.CodeInvalidRequest, "limit must be a number", map[string]string{"field": "limit"})
			return
		}
		if n == 0 {
			n = -1 // an explicit 0 is out of range, not "the default"
		}
		limit = n
	}
	out, err := s.cfg.DB.ListDeliveries(r.Context(), tenant, name, q.Get("status"), limit)
	s.reply(w, r, out, err)
}

// retryDelivery is POST /v1/tenants/{tenant}/installs/{name}/deliveries/{id}/retry.
func (s *Server) retryDelivery(w http.ResponseWriter, r *http.Request) {
	tenant, name, ok := s.installParams(w, r)
	if !ok {
		return
	}
	out, err := s.cfg.DB.RetryDelivery(r.Context(), tenant, name, r.PathValue("id"), s.now())
	if err == nil {
		s.metrics.deliveryOutcomes.WithLabelValues("requeued").Inc()
	}
	s.reply(w, r, out, err)
}
