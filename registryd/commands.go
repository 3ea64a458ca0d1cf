package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/extedge/extedge/internal/secretbox"
	"github.com/extedge/extedge/internal/tenantid"
	"github.com/extedge/extedge/migrations"
	"github.com/extedge/extedge/registryd/store"
)

// cmdMigrate is `registryd migrate`: apply pending migrations, print them.
func cmdMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := addDatabaseFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	dbURL, err := db.resolve()
	if err != nil {
		return err
	}
	d, err := openDatabase(ctx, dbURL, false)
	if err != nil {
		return err
	}
	defer d.Close()
	applied, err := migrations.Apply(ctx, d.db.Pool)
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintln(stdout, "schema up to date")
	}
	for _, v := range applied {
		fmt.Fprintln(stdout, "applied", v)
	}
	return nil
}

// cmdTokenCreate is `registryd token create`: it prints the token once on
// stdout (one line), or with --json {"token","id","role","tenant"}.
func cmdTokenCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := addDatabaseFlags(fs)
	role := fs.String("role", "", "platform_admin, tenant_admin or service")
	tenant := fs.String("tenant", "", "tenant id (tenant_admin only)")
	name := fs.String("name", "", "a label for the token (optional)")
	expires := fs.Duration("expires", 0, "lifetime, e.g. 720h (default: never expires)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args, "role", "tenant", "name", "json"); err != nil {
		return err
	}
	if *expires < 0 {
		return fmt.Errorf("--expires %v: want a positive duration such as 720h", *expires)
	}
	if !store.ValidRole(*role) {
		return fmt.Errorf("--role must be platform_admin, tenant_admin or service")
	}
	if *tenant != "" && !tenantid.Valid(*tenant) {
		return fmt.Errorf("--tenant %q is not a valid tenant id ([A-Za-z0-9._-], at most 64)", *tenant)
	}
	dbURL, err := db.resolve()
	if err != nil {
		return err
	}
	d, err := openDatabase(ctx, dbURL, false)
	if err != nil {
		return err
	}
	defer d.Close()
	var expiresAt time.Time
	if *expires > 0 {
		expiresAt = time.Now().Add(*expires).UTC().Truncate(time.Second)
	}
	token, id, err := d.db.CreateTokenUntil(ctx, *role, *tenant, *name, expiresAt)
	if err != nil {
		return err
	}
	if *asJSON {
		var t any
		if *tenant != "" {
			t = *tenant
		}
		out := map[string]any{"token": token, "id": id, "role": *role, "tenant": t}
		if !expiresAt.IsZero() {
			out["expires_at"] = expiresAt
		}
		return json.NewEncoder(stdout).Encode(out)
	}
	_, err = fmt.Fprintln(stdout, token)
	return err
}

// cmdTokenList is `registryd token list`: ids, roles, tenants, names,
// expiries (RFC 3339, or "never") and states, never values.
func cmdTokenList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := addDatabaseFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args, "json"); err != nil {
		return err
	}
	dbURL, err := db.resolve()
	if err != nil {
		return err
	}
	d, err := openDatabase(ctx, dbURL, false)
	if err != nil {
		return err
	}
	defer d.Close()
	list, err := d.db.ListTokens(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(list)
	}
	now := time.Now()
	for _, t := range list {
		state, expiry := "active", "never"
		if t.ExpiresAt != nil {
			expiry = t.ExpiresAt.UTC().Format(time.RFC3339)
			if !now.Before(*t.ExpiresAt) {
				state = "expired"
			}
		}
		if t.RevokedAt != nil {
			state = "revoked"
		}
		fmt.Fprintf(stdout, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Role, dash(t.Tenant), dash(t.Name), expiry, state)
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// cmdTokenRevoke is `registryd token revoke ID`.
func cmdTokenRevoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token revoke", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := addDatabaseFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("usage: registryd token revoke ID")
	}
	dbURL, err := db.resolve()
	if err != nil {
		return err
	}
	d, err := openDatabase(ctx, dbURL, false)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.db.RevokeToken(ctx, fs.Arg(0)); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "revoked", fs.Arg(0))
	return nil
}

// cmdSecretsKeyRotate is `registryd secrets-key rotate`: it re-seals every
// stored secret under the first key of --new-key-file, opening with the
// keys of both files, in batches of --batch-size rows (one transaction
// each). Values already under the new key are skipped, so a rerun after a
// crash finishes the job and a rerun after success rewrites nothing.
func cmdSecretsKeyRotate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("secrets-key rotate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := addDatabaseFlags(fs)
	oldFile := fs.String("old-key-file", "", "key file the secrets are sealed under now")
	newFile := fs.String("new-key-file", "", "key file to re-seal under (its first key seals)")
	batch := fs.Int("batch-size", 500, "secrets re-sealed per transaction")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	dbURL, err := db.resolve()
	if err != nil {
		return err
	}
	if *oldFile == "" || *newFile == "" {
		return fmt.Errorf("--old-key-file and --new-key-file are required")
	}
	if *batch < 1 {
		return fmt.Errorf("--batch-size %d: want at least 1", *batch)
	}
	oldKeys, err := secretbox.LoadKeyFile(*oldFile)
	if err != nil {
		return fmt.Errorf("--old-key-file: %v", err)
	}
	newKeys, err := secretbox.LoadKeyFile(*newFile)
	if err != nil {
		return fmt.Errorf("--new-key-file: %v", err)
	}
	keys := secretbox.Combine(newKeys, oldKeys)
	d, err := openDatabase(ctx, dbURL, false)
	if err != nil {
		return err
	}
	defer d.Close()
	stats, err := d.db.ResealSecrets(ctx, *batch, keys.ResealAtRest)
	fmt.Fprintf(stdout, "re-sealed %d of %d secrets in %d batches\n", stats.Resealed, stats.Examined, stats.Batches)
	if err != nil {
		return fmt.Errorf("rotation stopped (committed batches stay done; rerun to continue): %v", err)
	}
	return nil
}
