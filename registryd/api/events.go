package api

import (
	"net/http"

	"go.uber.org/zap"

	"github.com/extedge/extedge/internal/registryapi"
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
		s.writeError(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusAccepted
		if ce := s.log.Check(zap.DebugLevel, "event published"); ce != nil {
			ce.Write(zap.String("topic", ev.Topic), zap.Int("deliveries", res.Deliveries))
		}
	}
	writeJSON(w, status, res)
}
