package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"

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
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args, "role", "tenant", "name", "json"); err != nil {
		return err
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
	token, id, err := d.db.CreateToken(ctx, *role, *tenant, *name)
	if err != nil {
		return err
	}
	if *asJSON {
		var t any
		if *tenant != "" {
			t = *tenant
		}
		return json.NewEncoder(stdout).Encode(map[string]any{"token": token, "id": id, "role": *role, "tenant": t})
	}
	_, err = fmt.Fprintln(stdout, token)
	return err
}

// cmdTokenList is `registryd token list`: ids, roles and tenants, never values.
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
	for _, t := range list {
		state := "active"
		if t.RevokedAt != nil {
			state = "revoked"
		}
		fmt.Fprintf(stdout, "%s\t%s\t%s\t%s\t%s\n", t.ID, t.Role, dash(t.Tenant), dash(t.Name), state)
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
