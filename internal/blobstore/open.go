package blobstore

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Open builds a Store from a URL, the form every component's --bundle-store
// flag accepts:
//
//	file:///abs/dir
//	s3://bucket?endpoint=host:port&region=R&path_style=true&tls=false[&access_key=…&secret_key=…]
//
// For s3, endpoint is required and may carry http:// or https:// (which then
// decides TLS); tls defaults to true, region to us-east-1, path_style to false
// (automatic: virtual-host style on AWS, path style elsewhere). Credentials
// come from access_key/secret_key when given, else from STORAGE_S3_ACCESS_KEY
// and STORAGE_S3_SECRET_KEY. Unknown query parameters are errors, so a typo
// does not silently fall back to a default.
//
// An empty URL builds S3 from the environment: STORAGE_S3_ENDPOINT,
// STORAGE_S3_BUCKET (STORAGE_S3_BUNDLE_BUCKET overrides it),
// STORAGE_S3_REGION, STORAGE_S3_ACCESS_KEY, STORAGE_S3_SECRET_KEY and
// STORAGE_S3_FORCE_PATH_STYLE.
//
// Open only parses and validates: it neither dials the network nor touches
// the file system, so configuration checks are side-effect free.
func Open(rawURL string) (Store, error) {
	return open(rawURL, os.Getenv)
}

// Environment variable names (SPEC §2.3).
const (
	envEndpoint       = "STORAGE_S3_ENDPOINT"
	envBucket         = "STORAGE_S3_BUCKET"
	envBundleBucket   = "STORAGE_S3_BUNDLE_BUCKET"
	envRegion         = "STORAGE_S3_REGION"
	envAccessKey      = "STORAGE_S3_ACCESS_KEY"
	envSecretKey      = "STORAGE_S3_SECRET_KEY"
	envForcePathStyle = "STORAGE_S3_FORCE_PATH_STYLE"
)

func open(rawURL string, getenv func(string) string) (Store, error) {
	if strings.TrimSpace(rawURL) == "" {
		cfg, err := s3ConfigFromEnv(getenv)
		if err != nil {
			return nil, err
		}
		return NewS3(cfg)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parsing blob store url: %v", err)
	}
	switch u.Scheme {
	case "file":
		return openFile(u)
	case "s3":
		cfg, err := s3ConfigFromURL(u, getenv)
		if err != nil {
			return nil, err
		}
		return NewS3(cfg)
	case "":
		return nil, fmt.Errorf("blob store url %q has no scheme (want file:///abs/dir or s3://bucket?endpoint=host:port)", rawURL)
	default:
		return nil, fmt.Errorf("blob store url: unsupported scheme %q (want file or s3)", u.Scheme)
	}
}

func openFile(u *url.URL) (Store, error) {
	if u.Host != "" && u.Host != "localhost" {
		return nil, fmt.Errorf("blob store url: file url must have an empty host (file:///abs/dir), got host %q", u.Host)
	}
	if u.Opaque != "" || !filepath.IsAbs(u.Path) {
		return nil, fmt.Errorf("blob store url: file url needs an absolute path (file:///abs/dir)")
	}
	if u.RawQuery != "" {
		return nil, fmt.Errorf("blob store url: file url takes no query parameters")
	}
	return NewLocal(u.Path)
}

// s3URLParams are the query parameters an s3:// URL may carry.
var s3URLParams = map[string]bool{
	"endpoint": true, "region": true, "path_style": true, "tls": true,
	"access_key": true, "secret_key": true,
}

func s3ConfigFromURL(u *url.URL, getenv func(string) string) (S3Config, error) {
	if u.Host == "" {
		return S3Config{}, errors.New("blob store url: s3 url needs a bucket (s3://bucket?endpoint=host:port)")
	}
	if u.Path != "" && u.Path != "/" {
		return S3Config{}, fmt.Errorf("blob store url: s3 url takes no path (got %q); the bucket is the host part", u.Path)
	}
	q := u.Query()
	for name := range q {
		if !s3URLParams[name] {
			return S3Config{}, fmt.Errorf("blob store url: unknown parameter %q", name)
		}
	}
	cfg := S3Config{
		Bucket:    u.Host,
		Endpoint:  q.Get("endpoint"),
		Region:    q.Get("region"),
		AccessKey: getenv(envAccessKey),
		SecretKey: getenv(envSecretKey),
		TLS:       true,
	}
	if q.Has("access_key") || q.Has("secret_key") {
		cfg.AccessKey, cfg.SecretKey = q.Get("access_key"), q.Get("secret_key")
	}
	if cfg.Endpoint == "" {
		return S3Config{}, errors.New("blob store url: s3 url needs endpoint=host:port")
	}
	var err error
	if q.Has("path_style") {
		if cfg.PathStyle, err = strconv.ParseBool(q.Get("path_style")); err != nil {
			return S3Config{}, fmt.Errorf("blob store url: path_style: %v", err)
		}
	}
	if q.Has("tls") {
		if cfg.TLS, err = strconv.ParseBool(q.Get("tls")); err != nil {
			return S3Config{}, fmt.Errorf("blob store url: tls: %v", err)
		}
		// An explicit scheme in the endpoint must agree with tls=.
		if scheme, _, ok := strings.Cut(cfg.Endpoint, "://"); ok && (scheme == "https") != cfg.TLS {
			return S3Config{}, fmt.Errorf("blob store url: endpoint scheme %s:// contradicts tls=%s", scheme, q.Get("tls"))
		}
	}
	return cfg, nil
}

func s3ConfigFromEnv(getenv func(string) string) (S3Config, error) {
	cfg := S3Config{
		Endpoint:  getenv(envEndpoint),
		Bucket:    getenv(envBucket),
		Region:    getenv(envRegion),
		AccessKey: getenv(envAccessKey),
		SecretKey: getenv(envSecretKey),
		TLS:       true,
	}
	if b := getenv(envBundleBucket); b != "" {
		cfg.Bucket = b
	}
	if cfg.Endpoint == "" {
		return S3Config{}, fmt.Errorf("no blob store configured: give a file:// or s3:// url, or set %s and %s", envEndpoint, envBucket)
	}
	if cfg.Bucket == "" {
		return S3Config{}, fmt.Errorf("%s is set but neither %s nor %s is", envEndpoint, envBucket, envBundleBucket)
	}
	if v := getenv(envForcePathStyle); v != "" {
		var err error
		if cfg.PathStyle, err = strconv.ParseBool(v); err != nil {
			return S3Config{}, fmt.Errorf("%s: %v", envForcePathStyle, err)
		}
	}
	return cfg, nil
}
