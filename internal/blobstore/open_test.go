package blobstore

import (
	"strings"
	"testing"
)

func TestOpenParsesURLsAndEnvironment(t *testing.T) {
	envKeys := map[string]string{envAccessKey: "ENVAK", envSecretKey: "envsecret"}
	tests := []struct {
		name    string
		url     string
		env     map[string]string
		want    S3Config // for s3 results
		wantDir string   // for file results
		wantErr string
	}{
		{name: "file url gives a local store", url: "file:///var/lib/extedge/bundles", wantDir: "/var/lib/extedge/bundles"},
		{name: "file url with localhost host is accepted", url: "file://localhost/srv/b", wantDir: "/srv/b"},
		{name: "relative file url is rejected", url: "file:relative/dir", wantErr: "absolute path"},
		{name: "file url with a remote host is rejected", url: "file://other/dir", wantErr: "empty host"},
		{name: "file url with a query is rejected", url: "file:///d?x=1", wantErr: "no query"},
		{name: "bare path is rejected with the accepted forms", url: "/var/lib/b", wantErr: "no scheme"},
		{name: "unknown scheme is rejected", url: "gs://bucket", wantErr: "unsupported scheme"},
		{
			name: "s3 url with every parameter",
			url:  "s3://bundles?endpoint=minio:9000&region=eu-west-1&path_style=true&tls=false&access_key=AK&secret_key=SK",
			want: S3Config{Endpoint: "minio:9000", Bucket: "bundles", Region: "eu-west-1", AccessKey: "AK", SecretKey: "SK", PathStyle: true, TLS: false},
		},
		{
			name: "s3 url defaults: tls on, region us-east-1, auto style, keys from env",
			url:  "s3://bundles?endpoint=s3.example.com",
			env:  envKeys,
			want: S3Config{Endpoint: "s3.example.com", Bucket: "bundles", Region: "us-east-1", AccessKey: "ENVAK", SecretKey: "envsecret", TLS: true},
		},
		{
			name: "s3 url keys override env keys",
			url:  "s3://bundles?endpoint=h:1&access_key=Q&secret_key=W",
			env:  envKeys,
			want: S3Config{Endpoint: "h:1", Bucket: "bundles", Region: "us-east-1", AccessKey: "Q", SecretKey: "W", TLS: true},
		},
		{
			name: "http:// endpoint turns tls off",
			url:  "s3://bundles?endpoint=http://minio:9000",
			want: S3Config{Endpoint: "minio:9000", Bucket: "bundles", Region: "us-east-1", TLS: false},
		},
		{
			name: "https:// endpoint keeps tls on",
			url:  "s3://bundles?endpoint=https://minio:9000/",
			want: S3Config{Endpoint: "minio:9000", Bucket: "bundles", Region: "us-east-1", TLS: true},
		},
		{name: "endpoint scheme contradicting tls= is rejected", url: "s3://b1?endpoint=https://h:1&tls=false", wantErr: "contradicts"},
		{name: "s3 url without endpoint is rejected", url: "s3://bundles", wantErr: "endpoint"},
		{name: "s3 url without bucket is rejected", url: "s3://?endpoint=h:1", wantErr: "bucket"},
		{name: "s3 url with a path is rejected", url: "s3://bundles/prefix?endpoint=h:1", wantErr: "no path"},
		{name: "unknown s3 parameter is rejected", url: "s3://bundles?endpoint=h:1&pathstyle=true", wantErr: `unknown parameter "pathstyle"`},
		{name: "bad tls value is rejected", url: "s3://bundles?endpoint=h:1&tls=maybe", wantErr: "tls"},
		{name: "bad path_style value is rejected", url: "s3://bundles?endpoint=h:1&path_style=yes-ish", wantErr: "path_style"},
		{name: "invalid bucket name is rejected", url: "s3://Bad_Bucket?endpoint=h:1", wantErr: "bucket"},
		{name: "endpoint with a path is rejected", url: "s3://bundles?endpoint=http://h:1/sub", wantErr: "without a path"},
		{name: "endpoint with a bad port is rejected", url: "s3://bundles?endpoint=h:99999", wantErr: "port"},
		{name: "access key without secret is rejected", url: "s3://bundles?endpoint=h:1&access_key=A", wantErr: "together"},
		{
			name: "empty url builds s3 from env",
			env: map[string]string{
				envEndpoint: "http://minio:9000", envBucket: "b-general", envRegion: "eu-central-1",
				envAccessKey: "AK", envSecretKey: "SK", envForcePathStyle: "true",
			},
			want: S3Config{Endpoint: "minio:9000", Bucket: "b-general", Region: "eu-central-1", AccessKey: "AK", SecretKey: "SK", PathStyle: true, TLS: false},
		},
		{
			name: "STORAGE_S3_BUNDLE_BUCKET overrides STORAGE_S3_BUCKET",
			env:  map[string]string{envEndpoint: "s3.amazonaws.com", envBucket: "general", envBundleBucket: "bundles-only"},
			want: S3Config{Endpoint: "s3.amazonaws.com", Bucket: "bundles-only", Region: "us-east-1", TLS: true},
		},
		{
			name: "STORAGE_S3_BUNDLE_BUCKET alone is enough",
			env:  map[string]string{envEndpoint: "h:1", envBundleBucket: "bundles-only"},
			want: S3Config{Endpoint: "h:1", Bucket: "bundles-only", Region: "us-east-1", TLS: true},
		},
		{name: "empty url without env is rejected", wantErr: "no blob store configured"},
		{name: "env endpoint without bucket is rejected", env: map[string]string{envEndpoint: "h:1"}, wantErr: envBucket},
		{name: "bad STORAGE_S3_FORCE_PATH_STYLE is rejected", env: map[string]string{envEndpoint: "h:1", envBucket: "bb1", envForcePathStyle: "sure"}, wantErr: envForcePathStyle},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string { return tt.env[k] }
			s, err := open(tt.url, getenv)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("open(%q) error = %v, want one mentioning %q", tt.url, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("open(%q): %v", tt.url, err)
			}
			switch s := s.(type) {
			case *Local:
				if tt.wantDir == "" || s.dir != tt.wantDir {
					t.Fatalf("got local store in %q, want %+v / dir %q", s.dir, tt.want, tt.wantDir)
				}
			case *S3:
				if tt.wantDir != "" || s.cfg != tt.want {
					t.Fatalf("got s3 config %+v, want %+v", s.cfg, tt.want)
				}
			default:
				t.Fatalf("unexpected store %T", s)
			}
		})
	}
}

func TestStringHidesSecrets(t *testing.T) {
	s, err := open("s3://bundles?endpoint=h:9000&tls=false&path_style=true&access_key=AKIDSECRET&secret_key=verysecret", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	got := s.String()
	if strings.Contains(got, "AKIDSECRET") || strings.Contains(got, "verysecret") {
		t.Fatalf("String() leaks credentials: %s", got)
	}
	if want := "s3://bundles?endpoint=h%3A9000&path_style=true&region=us-east-1&tls=false"; got != want {
		t.Fatalf("String() = %s, want %s", got, want)
	}
	// The logged form opens to the same store (minus credentials).
	again, err := open(got, func(string) string { return "" })
	if err != nil || again.String() != got {
		t.Fatalf("String() does not round-trip: %v, %v", again, err)
	}

	l, _ := NewLocal("/var/lib/extedge/bundles")
	if l.String() != "file:///var/lib/extedge/bundles" {
		t.Fatalf("Local.String() = %s", l.String())
	}
}

func TestOpenHasNoSideEffects(t *testing.T) {
	dir := t.TempDir() + "/not/created"
	if _, err := open("file://"+dir, noEnv); err != nil {
		t.Fatal(err)
	}
	if _, err := readDirNames(dir); err == nil {
		t.Fatalf("Open created %s", dir)
	}
	// An endpoint nobody listens on still opens: Open never dials.
	if _, err := open("s3://bundles?endpoint=192.0.2.1:9&tls=false", func(string) string { return "" }); err != nil {
		t.Fatalf("open with an unreachable endpoint: %v", err)
	}
}

func noEnv(string) string { return "" }
