-- 0003_token_expiry: a token may carry an expiry (`registryd token create
-- --expires`); NULL never expires. Authenticate refuses a token at or after
-- expires_at with 401 unauthorized "token expired".
ALTER TABLE api_token ADD COLUMN expires_at timestamptz;
