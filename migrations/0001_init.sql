-- 0001_init: the registry schema of SPEC §7.2.
--
-- Tenant-scoped tables carry a tenant_id column and row-level security keyed
-- by the per-transaction setting extedge.tenant (set with
-- set_config('extedge.tenant', $1, true)). FORCE makes the policies apply to
-- the table owner too, so the application role that ran the migrations is
-- bound by them. The value '*' is the platform scope used only by
-- registryd's service paths that must read across tenants (change feed,
-- aggregation jobs); tenant-facing handlers never set it. A session without
-- the setting sees and writes nothing.

CREATE TABLE extension_registry (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name           text NOT NULL UNIQUE,
    publisher      text NOT NULL,
    latest_version text,
    deprecation    jsonb,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE extension_bundle (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    content_hash text NOT NULL UNIQUE CHECK (content_hash ~ '^sha256:[0-9a-f]{64}$'),
    storage_url  text NOT NULL,
    size         bigint NOT NULL,
    runtime      text NOT NULL,
    sdk_version  text,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE extension_version (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    registry_id   uuid NOT NULL REFERENCES extension_registry (id),
    semver        text NOT NULL,
    content_hash  text NOT NULL REFERENCES extension_bundle (content_hash),
    signature     jsonb,
    manifest      jsonb NOT NULL,
    runtime       text NOT NULL,
    capabilities  text[] NOT NULL DEFAULT '{}',
    endpoints     jsonb NOT NULL DEFAULT '[]',
    ui            jsonb,
    sbom_ref      text,
    revoked_at    timestamptz,
    revoke_reason text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (registry_id, semver)
);
CREATE INDEX extension_version_content_hash ON extension_version (content_hash);

CREATE TABLE tenant_extension_install (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id        text NOT NULL,
    registry_id      uuid NOT NULL REFERENCES extension_registry (id),
    version_id       uuid NOT NULL REFERENCES extension_version (id),
    status           text NOT NULL DEFAULT 'enabled' CHECK (status IN ('enabled', 'disabled')),
    granted_caps     text[] NOT NULL DEFAULT '{}',
    config           jsonb NOT NULL DEFAULT '{}',
    egress_allowlist text[] NOT NULL DEFAULT '{}',
    quotas           jsonb,
    -- row_version and secrets_revision feed resolve's ETag.
    row_version      bigint NOT NULL DEFAULT 1,
    secrets_revision bigint NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, registry_id)
);

CREATE TABLE extension_event_subscription (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id         text NOT NULL,
    tenant_install_id uuid NOT NULL REFERENCES tenant_extension_install (id) ON DELETE CASCADE,
    event             text NOT NULL,
    handler           text NOT NULL,
    filter            jsonb,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX extension_event_subscription_install ON extension_event_subscription (tenant_install_id);
CREATE INDEX extension_event_subscription_topic ON extension_event_subscription (tenant_id, event);

CREATE TABLE extension_execution_log (
    id           bigserial PRIMARY KEY,
    tenant_id    text NOT NULL,
    extension_id text NOT NULL,
    install_id   text NOT NULL,
    version_id   text,
    content_hash text,
    endpoint     text,
    request_id   text NOT NULL,
    event_id     text,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz NOT NULL,
    status       text NOT NULL,
    http_status  integer,
    error_code   text,
    metrics      jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX extension_execution_log_tenant_time ON extension_execution_log (tenant_id, extension_id, started_at);

CREATE TABLE extension_quota_usage (
    tenant_id    text NOT NULL,
    extension_id text NOT NULL,
    window_start timestamptz NOT NULL,
    cpu_ms       double precision NOT NULL DEFAULT 0,
    mem_mb_ms    double precision NOT NULL DEFAULT 0,
    invocations  bigint NOT NULL DEFAULT 0,
    errors       bigint NOT NULL DEFAULT 0,
    duration_ms  double precision NOT NULL DEFAULT 0,
    egress_bytes bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, extension_id, window_start)
);

-- extension_storage is the KV of §7.6. value holds the JSON bytes exactly as
-- written (jsonb would reorder keys); value_bytes is what quotas count.
CREATE TABLE extension_storage (
    tenant_id   text NOT NULL,
    install_id  uuid NOT NULL REFERENCES tenant_extension_install (id) ON DELETE CASCADE,
    namespace   text NOT NULL,
    key         text NOT NULL,
    value       bytea NOT NULL,
    value_bytes integer NOT NULL,
    revision    bigint NOT NULL,
    expires_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, install_id, namespace, key)
);
CREATE INDEX extension_storage_expiry ON extension_storage (expires_at) WHERE expires_at IS NOT NULL;

-- extension_storage_usage keeps the per-install totals that KV quotas are
-- checked against, updated in the same transaction as every write so two
-- concurrent writers cannot both slip under the limit.
CREATE TABLE extension_storage_usage (
    tenant_id  text NOT NULL,
    install_id uuid NOT NULL REFERENCES tenant_extension_install (id) ON DELETE CASCADE,
    records    bigint NOT NULL DEFAULT 0,
    bytes      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, install_id)
);

CREATE TABLE tenant_extension_secret (
    tenant_id  text NOT NULL,
    install_id uuid NOT NULL REFERENCES tenant_extension_install (id) ON DELETE CASCADE,
    key        text NOT NULL,
    sealed     text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, install_id, key)
);

CREATE TABLE api_token (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    token_hash bytea NOT NULL UNIQUE,
    role       text NOT NULL CHECK (role IN ('platform_admin', 'tenant_admin', 'service')),
    tenant_id  text,
    name       text,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    CHECK ((role = 'tenant_admin') = (tenant_id IS NOT NULL))
);

-- change_log backs the /v1/changes feed: its id is the SSE event id, so a
-- client reconnecting with Last-Event-ID resumes from the table. Each insert
-- notifies listeners at commit.
CREATE TABLE change_log (
    id           bigserial PRIMARY KEY,
    type         text NOT NULL,
    tenant_id    text,
    extension    text,
    content_hash text,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION change_log_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('extedge_changes', NEW.id::text);
    RETURN NEW;
END;
$$;

CREATE TRIGGER change_log_notify AFTER INSERT ON change_log
    FOR EACH ROW EXECUTE FUNCTION change_log_notify();

-- Row-level security on tenant-scoped tables.
CREATE FUNCTION extedge_tenant_visible(t text) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT coalesce(current_setting('extedge.tenant', true), '') <> ''
       AND (t = current_setting('extedge.tenant', true) OR current_setting('extedge.tenant', true) = '*')
$$;

DO $$
DECLARE
    tbl text;
BEGIN
    FOREACH tbl IN ARRAY ARRAY[
        'tenant_extension_install', 'extension_event_subscription',
        'extension_execution_log', 'extension_quota_usage',
        'extension_storage', 'extension_storage_usage', 'tenant_extension_secret']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', tbl);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', tbl);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (extedge_tenant_visible(tenant_id)) WITH CHECK (extedge_tenant_visible(tenant_id))', tbl);
    END LOOP;
END;
$$;
