package guest

import (
	"encoding/json"
	"errors"
	"time"
)

// Event is an event delivered to the extension (SPEC §18): the install
// subscribes to its topic in the manifest's `events`, and the platform
// runs the subscription's handler with it, at least once — a handler may
// see one event twice (a runner died after it ran) and should be
// idempotent on ID.
type Event struct {
	// ID is unique per tenant; a redelivery carries the same ID.
	ID         string          `json:"id"`
	Topic      string          `json:"topic"`
	OccurredAt time.Time       `json:"occurred_at"`
	Payload    json.RawMessage `json:"payload"`

	// Context and Config are the delivery's call context and the
	// install's configuration, as an API call's Request carries them.
	Context Context         `json:"-"`
	Config  json.RawMessage `json:"-"`
}

// DecodePayload unmarshals the event's payload into v.
func (e *Event) DecodePayload(v any) error {
	if len(e.Payload) == 0 {
		return errors.New("event payload is empty")
	}
	if err := json.Unmarshal(e.Payload, v); err != nil {
		return errors.New("decoding event payload: " + err.Error())
	}
	return nil
}

// EventFunc handles one event. Returning nil acknowledges it; an error
// (or a panic) makes the platform retry the delivery with backoff, and
// after the last attempt the delivery is dead (an admin may retry it).
type EventFunc func(ev *Event) error

// OnEvent registers fn for events of topic, e.g. "agreement.updated".
// Events are dispatched by topic, whatever the subscription's handler
// name, so one module may serve several subscriptions. OnEvent panics on
// an empty topic, a nil fn or a duplicate registration.
func OnEvent(topic string, fn EventFunc) { defaultRouter.onEvent(topic, fn) }

func (rt *router) onEvent(topic string, fn EventFunc) {
	if topic == "" {
		panic("guest: OnEvent with empty topic")
	}
	if fn == nil {
		panic("guest: OnEvent " + topic + " with nil func")
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if _, dup := rt.events[topic]; dup {
		panic("guest: event topic " + topic + " registered twice")
	}
	rt.events[topic] = fn
}

// dispatchEvent runs the topic's handler: 204 when it acknowledges, the
// error as ErrorFrom answers it (a non-2xx status, so retried) when it
// fails, 404 not_found without a handler for the topic.
func (rt *router) dispatchEvent(r *Request) Response {
	rt.mu.RLock()
	fn := rt.events[r.Event.Topic]
	rt.mu.RUnlock()
	if fn == nil {
		return Error(404, CodeNotFound, "no handler for event topic "+r.Event.Topic)
	}
	ev := *r.Event
	ev.Context, ev.Config = r.Context, r.Config
	if err := fn(&ev); err != nil {
		return ErrorFrom(err)
	}
	return Response{Status: 204}
}
