-- 0005_instance_reuse: an install may opt into instance reuse (SPEC §6.5):
-- {"enabled":true,"max_calls":N,"max_age_ms":N}; NULL is off (a fresh
-- instance per call). Only a platform admin may change it, like quotas.
ALTER TABLE tenant_extension_install ADD COLUMN instance_reuse jsonb;
