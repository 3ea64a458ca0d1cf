package main

// Event commands (SPEC §18): events publish, events list, events retry.
//
//   - publish takes the payload as JSON text, @FILE or - (stdin); without
//     --id it makes one up (printed), so a retry of the same publish must
//     pass the printed id to stay idempotent. --occurred-at defaults to now.
//   - publish needs a platform_admin or service token; list and retry
//     take a tenant_admin token of that tenant too.

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/extedge/extedge/internal/registryapi"
)

// readPayload turns --payload into JSON bytes: text, @FILE or - (stdin).
func readPayload(v string, stdin io.Reader) (json.RawMessage, error) {
	var b []byte
	switch {
	case v == "":
		return nil, nil
	case v == "-":
		var err error
		if b, err = io.ReadAll(io.LimitReader(stdin, registryapi.MaxEventPayload+1)); err != nil {
			return nil, fmt.Errorf("reading the payload from stdin: %v", err)
		}
	case strings.HasPrefix(v, "@"):
		var err error
		if b, err = os.ReadFile(v[1:]); err != nil {
			return nil, fmt.Errorf("reading the payload: %v", err)
		}
	default:
		b = []byte(v)
	}
	if !json.Valid(b) {
		return nil, usageError{"--payload must be JSON (text, @FILE or - for stdin)"}
	}
	return b, nil
}

func newEventID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "evt_" + hex.EncodeToString(b[:])
}

func eventsPublishCmd(fs *flagSet) runFunc {
	tenant := fs.String("tenant", "", "tenant id")
	topic := fs.String("topic", "", "event topic ([a-z0-9_.-]+)")
	id := fs.String("id", "", "event id, unique per tenant (default: a new random id)")
	occurred := fs.String("occurred-at", "", "when it happened, RFC 3339 (default: now)")
	payload := fs.String("payload", "", "JSON payload, @FILE or - for stdin (default: null)")
	rf := addRegistryFlags(fs, time.Minute)
	return func(c *cli, pos []string) error {
		var err error
		if len(pos) > 0 || *tenant == "" || *topic == "" {
			return usageError{"events publish needs --tenant and --topic and no arguments"}
		}
		ev := registryapi.Event{ID: *id, TenantID: *tenant, Topic: *topic, OccurredAt: time.Now().UTC()}
		if ev.ID == "" {
			ev.ID = newEventID()
		}
		if *occurred != "" {
			if ev.OccurredAt, err = time.Parse(time.RFC3339Nano, *occurred); err != nil {
				return usageError{fmt.Sprintf("--occurred-at %q is not RFC 3339", *occurred)}
			}
		}
		if ev.Payload, err = readPayload(*payload, c.stdin); err != nil {
			return err
		}
		s, err := rf.session()
		if err != nil {
			return err
		}
		defer s.cancel()
		res, err := s.client.PublishEvent(s.ctx, ev)
		if err != nil {
			return s.wrap(err)
		}
		if *rf.asJSON {
			return c.printJSON(map[string]any{"id": res.ID, "tenant": ev.TenantID, "deliveries": res.Deliveries, "created": res.Created})
		}
		if res.Created {
			fmt.Fprintf(c.stdout, "published event %s (%s) for tenant %s: %d deliveries\n", res.ID, ev.Topic, ev.TenantID, res.Deliveries)
		} else {
			fmt.Fprintf(c.stdout, "event %s was already published for tenant %s (%d deliveries); nothing is delivered again\n", res.ID, ev.TenantID, res.Deliveries)
		}
		return nil
	}
}

func eventsListCmd(fs *flagSet) runFunc {
	tenant := fs.String("tenant", "", "tenant id")
	ext := fs.String("extension", "", "extension name")
	status := fs.String("status", "", "only deliveries with this status: pending, leased, succeeded or dead")
	limit := fs.Int("limit", 0, "at most this many, newest first (default 100, at most 500)")
	rf := addRegistryFlags(fs, time.Minute)
	return func(c *cli, pos []string) error {
		if len(pos) > 0 || *tenant == "" || *ext == "" {
			return usageError{"events list needs --tenant and --extension and no arguments"}
		}
		s, err := rf.session()
		if err != nil {
			return err
		}
		defer s.cancel()
		ds, err := s.client.ListDeliveries(s.ctx, *tenant, *ext, *status, *limit)
		if err != nil {
			return s.wrap(err)
		}
		if ds == nil {
			ds = []registryapi.Delivery{}
		}
		if *rf.asJSON {
			return c.printJSON(ds)
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "DELIVERY\tEVENT\tTOPIC\tSTATUS\tATTEMPTS\tWHEN\tLAST ERROR")
		for _, d := range ds {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\n", d.ID, d.EventID, d.Topic, d.Status, d.Attempts, d.MaxAttempts, deliveryWhen(d), orDash(oneLine(d.LastError)))
		}
		return tw.Flush()
	}
}

// deliveryWhen is the time that matters for a delivery's status.
func deliveryWhen(d registryapi.Delivery) string {
	t := d.UpdatedAt
	prefix := ""
	switch {
	case d.NextAttemptAt != nil:
		t, prefix = *d.NextAttemptAt, "next "
	case d.LeaseExpiresAt != nil:
		t, prefix = *d.LeaseExpiresAt, "lease until "
	case d.FinishedAt != nil:
		t = *d.FinishedAt
	}
	return prefix + t.UTC().Format(time.RFC3339)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func eventsRetryCmd(fs *flagSet) runFunc {
	tenant := fs.String("tenant", "", "tenant id")
	ext := fs.String("extension", "", "extension name")
	rf := addRegistryFlags(fs, time.Minute)
	return func(c *cli, ids []string) error {
		if len(ids) == 0 || *tenant == "" || *ext == "" {
			return usageError{"events retry needs --tenant, --extension and at least one delivery id"}
		}
		s, err := rf.session()
		if err != nil {
			return err
		}
		defer s.cancel()
		outs := []*registryapi.DeliveryOutcome{}
		var errs []error
		for _, id := range ids {
			out, err := s.client.RetryDelivery(s.ctx, *tenant, *ext, id)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", id, s.wrap(err)))
				continue
			}
			outs = append(outs, out)
			if !*rf.asJSON {
				fmt.Fprintf(c.stdout, "delivery %s of %s for tenant %s is pending again\n", id, *ext, *tenant)
			}
		}
		if *rf.asJSON {
			if err := c.printJSON(outs); err != nil {
				return err
			}
		}
		return errors.Join(errs...)
	}
}
