-- 0002_execution_dedup: runners resend a batch when they cannot tell whether
-- registryd stored it; a record is identified by (tenant, request, start),
-- so a resent record is stored and counted once.
CREATE UNIQUE INDEX extension_execution_log_dedup
    ON extension_execution_log (tenant_id, request_id, started_at);
