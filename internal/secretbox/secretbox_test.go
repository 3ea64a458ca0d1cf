package secretbox

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func testKeys(t *testing.T) *Keys {
	t.Helper()
	k, err := ParseKey(GenerateKey())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKeyFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "k")
	if err := os.WriteFile(p, []byte("  "+GenerateKey()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeyFile(p); err != nil {
		t.Fatalf("whitespace around the key must be trimmed: %v", err)
	}
	for name, bad := range map[string]string{
		"not base64": "!!!",
		"too short":  base64.StdEncoding.EncodeToString(make([]byte, 16)),
	} {
		if _, err := ParseKey(bad); err == nil {
			t.Errorf("%s: ParseKey accepted %q", name, bad)
		}
	}
}

func TestAtRestRoundTripAndBinding(t *testing.T) {
	k := testKeys(t)
	s := k.SealAtRest([]byte("hunter2"), "t1/i1/API_KEY")
	if strings.Contains(s, "hunter2") {
		t.Fatal("plaintext visible in sealed value")
	}
	pt, err := k.OpenAtRest(s, "t1/i1/API_KEY")
	if err != nil || string(pt) != "hunter2" {
		t.Fatalf("open = %q, %v", pt, err)
	}
	if _, err := k.OpenAtRest(s, "t2/i1/API_KEY"); !errors.Is(err, ErrOpen) {
		t.Fatalf("value moved to another row must not open, got %v", err)
	}
	if _, err := testKeys(t).OpenAtRest(s, "t1/i1/API_KEY"); !errors.Is(err, ErrOpen) {
		t.Fatalf("another KEK must not open, got %v", err)
	}
}

func TestEnvelope(t *testing.T) {
	k := testKeys(t)
	now := time.Unix(1_800_000_000, 0)
	env, err := k.SealEnvelope("t1", "i1", map[string]string{"API_KEY": "s3cr3t"}, now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(env, "s3cr3t") {
		t.Fatal("plaintext visible in envelope")
	}
	got, err := k.OpenEnvelope(env, "t1", "i1", now)
	if err != nil || got["API_KEY"] != "s3cr3t" {
		t.Fatalf("open = %v, %v", got, err)
	}

	// Forge a header for another tenant but keep the ciphertext.
	parts := strings.Split(strings.TrimPrefix(env, envelopePrefix), ".")
	forged := envelopePrefix + b64.EncodeToString([]byte(`{"t":"t2","i":"i1","e":1900000000}`)) + "." + parts[1]
	tampered := env[:len(env)-2] + "AA"

	cases := []struct {
		name           string
		env, ten, inst string
		at             time.Time
		want           error
	}{
		{"another tenant is refused", env, "t2", "i1", now, ErrBinding},
		{"another install is refused", env, "t1", "i2", now, ErrBinding},
		{"expired envelope is refused", env, "t1", "i1", now.Add(time.Minute), ErrExpired},
		{"forged header does not authenticate", forged, "t2", "i1", now, ErrOpen},
		{"tampered ciphertext does not authenticate", tampered, "t1", "i1", now, ErrOpen},
		{"garbage is malformed", "ev1.nope", "t1", "i1", now, ErrMalformed},
		{"wrong version is malformed", "ev9." + strings.TrimPrefix(env, envelopePrefix), "t1", "i1", now, ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := k.OpenEnvelope(c.env, c.ten, c.inst, c.at); !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
	// At-rest and envelope keys are separate members of the family.
	if _, err := k.OpenAtRest(parts[1], parts[0]); !errors.Is(err, ErrOpen) {
		t.Fatalf("envelope ciphertext must not open with the at-rest key, got %v", err)
	}
}

// TestKeyFileWithSeveralKeys: during a rotation the key file holds the new
// key first and the old one after it; the first line seals, every line
// opens, at rest and in envelopes.
func TestKeyFileWithSeveralKeys(t *testing.T) {
	oldLine, newLine := GenerateKey(), GenerateKey()
	oldKeys, _ := ParseKey(oldLine)
	newKeys, _ := ParseKey(newLine)
	p := filepath.Join(t.TempDir(), "k")
	if err := os.WriteFile(p, []byte(newLine+"\n\n  "+oldLine+"  \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	both, err := LoadKeyFile(p)
	if err != nil {
		t.Fatalf("a file with two keys and a blank line: %v", err)
	}
	now := time.Unix(1_800_000_000, 0)
	for name, sealer := range map[string]*Keys{"old": oldKeys, "new": newKeys} {
		t.Run("a value sealed under the "+name+" key opens", func(t *testing.T) {
			pt, err := both.OpenAtRest(sealer.SealAtRest([]byte("v-"+name), "aad"), "aad")
			if err != nil || string(pt) != "v-"+name {
				t.Fatalf("at rest: %q, %v", pt, err)
			}
			env, err := sealer.SealEnvelope("t1", "i1", map[string]string{"K": name}, now.Add(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			got, err := both.OpenEnvelope(env, "t1", "i1", now)
			if err != nil || got["K"] != name {
				t.Fatalf("envelope: %v, %v", got, err)
			}
		})
	}
	t.Run("the first line seals", func(t *testing.T) {
		if _, err := newKeys.OpenAtRest(both.SealAtRest([]byte("x"), "aad"), "aad"); err != nil {
			t.Fatalf("at rest, sealed by old+new, opened by new alone: %v", err)
		}
		if _, err := oldKeys.OpenAtRest(both.SealAtRest([]byte("x"), "aad"), "aad"); !errors.Is(err, ErrOpen) {
			t.Fatalf("the second line sealed: %v", err)
		}
		env, _ := both.SealEnvelope("t1", "i1", map[string]string{"K": "v"}, now.Add(time.Minute))
		if _, err := newKeys.OpenEnvelope(env, "t1", "i1", now); err != nil {
			t.Fatalf("envelope sealed by old+new, opened by new alone: %v", err)
		}
	})
	t.Run("binding still holds with several keys", func(t *testing.T) {
		s := oldKeys.SealAtRest([]byte("x"), "t1/i1/K")
		if _, err := both.OpenAtRest(s, "t2/i1/K"); !errors.Is(err, ErrOpen) {
			t.Fatalf("moved value: %v", err)
		}
	})
	for name, bad := range map[string]string{
		"an empty file is refused":       "\n \n",
		"a bad second line is refused":   newLine + "\n!!!\n",
		"a short second line is refused": newLine + "\n" + base64.StdEncoding.EncodeToString(make([]byte, 16)),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseKey(bad); err == nil {
				t.Fatalf("ParseKey accepted %q", bad)
			}
		})
	}
	t.Run("the error names the line", func(t *testing.T) {
		_, err := ParseKey(newLine + "\n!!!\n")
		if err == nil || !strings.Contains(err.Error(), "line 2") {
			t.Fatalf("err = %v, want it to name line 2", err)
		}
	})
}

// TestResealAtRest: re-sealing moves a value under the first key, and a
// value already there is left as it is.
func TestResealAtRest(t *testing.T) {
	oldKeys, newKeys := testKeys(t), testKeys(t)
	rotating := Combine(newKeys, oldKeys)
	sealed := oldKeys.SealAtRest([]byte("hunter2"), "aad")

	resealed, changed, err := rotating.ResealAtRest(sealed, "aad")
	if err != nil || !changed || resealed == sealed {
		t.Fatalf("reseal of an old value: changed=%v, %v", changed, err)
	}
	if pt, err := newKeys.OpenAtRest(resealed, "aad"); err != nil || string(pt) != "hunter2" {
		t.Fatalf("the new key alone opens the re-sealed value: %q, %v", pt, err)
	}
	again, changed, err := rotating.ResealAtRest(resealed, "aad")
	if err != nil || changed || again != resealed {
		t.Fatalf("reseal of a value already under the new key: changed=%v, same=%v, %v", changed, again == resealed, err)
	}
	if _, _, err := rotating.ResealAtRest(testKeys(t).SealAtRest([]byte("x"), "aad"), "aad"); !errors.Is(err, ErrOpen) {
		t.Fatalf("a value under neither key: %v, want ErrOpen", err)
	}
	if _, _, err := rotating.ResealAtRest(sealed, "other-aad"); !errors.Is(err, ErrOpen) {
		t.Fatalf("a value with another aad: %v, want ErrOpen", err)
	}
}
