-- 0004_events: durable event delivery (SPEC §18).
--
-- extension_event is one POST /v1/events, unique per (tenant, id): a repeat
-- finds the row and answers with the stored delivery count, creating
-- nothing. extension_event_delivery is the work queue: one row per
-- subscribed enabled install, inserted in the event's transaction and
-- leased by runners with FOR UPDATE SKIP LOCKED (registryd/store/events.go
-- explains the state machine). Both are tenant-scoped with the same
-- row-level security as 0001; leasing crosses tenants under the '*'
-- platform scope.

CREATE TABLE extension_event (
    tenant_id   text NOT NULL,
    id          text NOT NULL,
    topic       text NOT NULL,
    occurred_at timestamptz NOT NULL,
    -- payload holds the JSON bytes as sent (jsonb would reorder keys and
    -- refuse \u0000), as extension_storage.value does.
    payload     bytea NOT NULL,
    deliveries  integer NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
-- Retention (registryd --event-retention) deletes finished events by age.
CREATE INDEX extension_event_created ON extension_event (created_at);

CREATE TABLE extension_event_delivery (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id        text NOT NULL,
    event_id         text NOT NULL,
    install_id       uuid NOT NULL REFERENCES tenant_extension_install (id) ON DELETE CASCADE,
    -- handler is the subscription's handler when the event was published.
    handler          text NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'leased', 'succeeded', 'dead')),
    attempts         integer NOT NULL DEFAULT 0,
    max_attempts     integer NOT NULL CHECK (max_attempts > 0),
    -- next_attempt_at: when a pending delivery may be leased.
    next_attempt_at  timestamptz NOT NULL,
    -- lease_id changes on every lease; complete and fail must present it.
    lease_id         uuid,
    lease_expires_at timestamptz,
    last_error       text,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    finished_at      timestamptz,
    FOREIGN KEY (tenant_id, event_id) REFERENCES extension_event (tenant_id, id) ON DELETE CASCADE,
    UNIQUE (tenant_id, event_id, install_id),
    CHECK ((status = 'leased') = (lease_id IS NOT NULL AND lease_expires_at IS NOT NULL))
);
-- The lease query's two kinds of candidates: due pending rows and expired leases.
CREATE INDEX extension_event_delivery_due ON extension_event_delivery (next_attempt_at) WHERE status = 'pending';
CREATE INDEX extension_event_delivery_lease ON extension_event_delivery (lease_expires_at) WHERE status = 'leased';
-- The admin listing: an install's deliveries by status, newest first.
CREATE INDEX extension_event_delivery_install ON extension_event_delivery (tenant_id, install_id, status, created_at);

DO $$
DECLARE
    tbl text;
BEGIN
    FOREACH tbl IN ARRAY ARRAY['extension_event', 'extension_event_delivery']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', tbl);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', tbl);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (extedge_tenant_visible(tenant_id)) WITH CHECK (extedge_tenant_visible(tenant_id))', tbl);
    END LOOP;
END;
$$;
