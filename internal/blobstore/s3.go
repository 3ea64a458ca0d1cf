package blobstore

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// S3Config configures an S3-compatible store (AWS S3, MinIO, …).
type S3Config struct {
	// Endpoint is host:port, optionally prefixed with http:// or https://,
	// in which case the prefix decides TLS and the TLS field is ignored.
	Endpoint string
	// Bucket must already exist.
	Bucket string
	// Region is sent in request signatures. Default: `us-east-1`.
	Region string
	// AccessKey and SecretKey are static credentials; both empty means
	// anonymous requests.
	AccessKey, SecretKey string
	// PathStyle forces path-style requests (http://endpoint/bucket/key), as
	// MinIO and most on-prem stores need. When false the style is chosen
	// automatically: virtual-host on AWS, path style elsewhere.
	PathStyle bool
	// TLS selects https.
	TLS bool
}

// Timeouts of the S3 client's transport. They bound how long an unreachable
// or stuck store can hold a caller before it gets ErrUnavailable; the caller's
// context bounds the rest (a long body transfer).
const (
	s3DialTimeout           = 5 * time.Second
	s3TLSHandshakeTimeout   = 5 * time.Second
	s3ResponseHeaderTimeout = 30 * time.Second
	// s3MaxRetries keeps minio-go's retry loop (exponential backoff, capped
	// at 1s per wait) short, so a store that is down is reported in about a
	// second rather than after ten retries.
	s3MaxRetries = 3
)

// s3PartSize is the buffer used for bodies of unknown size. A body that fits
// goes up in one conditional PUT; a larger one is sent as a multipart upload
// of parts this size, so memory stays bounded for any body.
const s3PartSize = 16 << 20

// s3MaxSinglePut is S3's limit for a single PUT; known-size bodies up to it
// are sent in one request.
const s3MaxSinglePut = 5 << 30

// S3 is a Store in an S3 bucket.
//
// Puts are conditional (`If-None-Match: *`), so an existing object is never
// overwritten and the server's 412 Precondition Failed means success. For
// multipart uploads the condition is sent both when the upload starts (to
// skip the transfer early) and when it completes (where S3 enforces it).
type S3 struct {
	cfg    S3Config
	client *minio.Client
	core   minio.Core
}

// NewS3 validates cfg and builds a client. It does not contact the server.
func NewS3(cfg S3Config) (*S3, error) {
	if scheme, rest, ok := strings.Cut(cfg.Endpoint, "://"); ok {
		switch scheme {
		case "http":
			cfg.TLS = false
		case "https":
			cfg.TLS = true
		default:
			return nil, fmt.Errorf("s3 blob store: endpoint scheme %q is not http or https", scheme)
		}
		cfg.Endpoint = strings.TrimSuffix(rest, "/")
	}
	if cfg.Endpoint == "" {
		return nil, errors.New("s3 blob store: endpoint is required")
	}
	if strings.ContainsAny(cfg.Endpoint, "/?#@") {
		return nil, fmt.Errorf("s3 blob store: endpoint %q must be host[:port] without a path", cfg.Endpoint)
	}
	if host, port, err := net.SplitHostPort(cfg.Endpoint); err == nil {
		if host == "" {
			return nil, fmt.Errorf("s3 blob store: endpoint %q has no host", cfg.Endpoint)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("s3 blob store: endpoint %q has an invalid port", cfg.Endpoint)
		}
	}
	if err := s3utils.CheckValidBucketNameStrict(cfg.Bucket); err != nil {
		return nil, fmt.Errorf("s3 blob store: bucket %q: %v", cfg.Bucket, err)
	}
	if (cfg.AccessKey == "") != (cfg.SecretKey == "") {
		return nil, errors.New("s3 blob store: access key and secret key must be given together")
	}
	if cfg.Region == "" {
		// A fixed region also saves minio-go a GetBucketLocation round trip.
		cfg.Region = "us-east-1"
	}
	lookup := minio.BucketLookupAuto
	if cfg.PathStyle {
		lookup = minio.BucketLookupPath
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:       cfg.TLS,
		Region:       cfg.Region,
		BucketLookup: lookup,
		Transport:    newS3Transport(),
		MaxRetries:   s3MaxRetries,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 blob store: %v", err)
	}
	return &S3{cfg: cfg, client: client, core: minio.Core{Client: client}}, nil
}

func newS3Transport() *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   s3DialTimeout,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSHandshakeTimeout:   s3TLSHandshakeTimeout,
		ResponseHeaderTimeout: s3ResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
		// Objects are compressed already; transparent gzip would also hide
		// the real Content-Length.
		DisableCompression: true,
	}
}

// String returns the store's s3:// URL without credentials.
func (s *S3) String() string {
	q := url.Values{}
	q.Set("endpoint", s.cfg.Endpoint)
	q.Set("region", s.cfg.Region)
	q.Set("path_style", strconv.FormatBool(s.cfg.PathStyle))
	q.Set("tls", strconv.FormatBool(s.cfg.TLS))
	return "s3://" + s.cfg.Bucket + "?" + q.Encode()
}

// createOnly returns put options that make the write conditional on the key
// being absent.
func createOnly() minio.PutObjectOptions {
	opts := minio.PutObjectOptions{
		ContentType:      "application/octet-stream",
		DisableMultipart: true,
	}
	opts.SetMatchETagExcept("*") // If-None-Match: *
	return opts
}

// Put stores r under key unless an object already exists there.
func (s *S3) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := validateKey(key); err != nil {
		return err
	}
	if size >= 0 && size <= s3MaxSinglePut {
		return s.putSingle(ctx, key, r, size)
	}
	if size > s3MaxSinglePut {
		return s.putMultipart(ctx, key, r, nil)
	}
	// Unknown size: buffer one part; if the body ends within it, one PUT.
	buf := make([]byte, s3PartSize)
	n, err := io.ReadFull(ctxReader{ctx, r}, buf)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return s.putSingle(ctx, key, bytes.NewReader(buf[:n]), int64(n))
	case err != nil:
		return fmt.Errorf("putting %s: reading body: %w", key, err)
	}
	return s.putMultipart(ctx, key, r, buf)
}

func (s *S3) putSingle(ctx context.Context, key string, r io.Reader, size int64) error {
	body := &bodyReader{r: r}
	_, err := s.client.PutObject(ctx, s.cfg.Bucket, key, body, size, createOnly())
	if err == nil || objectExists(err) {
		return nil
	}
	if berr := body.failure(size); berr != nil {
		return fmt.Errorf("putting %s: reading body: %w", key, berr)
	}
	return s.wrap("putting", key, err)
}

// putMultipart uploads r in s3PartSize parts; first, when not nil, is a full
// first part already read from r. memory use is one part buffer.
func (s *S3) putMultipart(ctx context.Context, key string, r io.Reader, first []byte) (err error) {
	opts := createOnly()
	opts.DisableMultipart = false
	uploadID, err := s.core.NewMultipartUpload(ctx, s.cfg.Bucket, key, opts)
	if err != nil {
		if objectExists(err) {
			return nil
		}
		return s.wrap("putting", key, err)
	}
	completed := false
	defer func() {
		if !completed {
			// The caller's context may be what failed; abort on a fresh one
			// so the parts do not linger until lifecycle rules clean them.
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			_ = s.core.AbortMultipartUpload(actx, s.cfg.Bucket, key, uploadID)
		}
	}()

	buf := first
	if buf == nil {
		buf = make([]byte, s3PartSize)
	}
	var parts []minio.CompletePart
	src := ctxReader{ctx, r}
	for partNumber := 1; ; partNumber++ {
		n := len(buf)
		if partNumber > 1 || first == nil {
			var rerr error
			n, rerr = io.ReadFull(src, buf)
			if rerr == io.EOF {
				break
			}
			if rerr != nil && rerr != io.ErrUnexpectedEOF {
				return fmt.Errorf("putting %s: reading body: %w", key, rerr)
			}
		}
		part, perr := s.core.PutObjectPart(ctx, s.cfg.Bucket, key, uploadID, partNumber,
			bytes.NewReader(buf[:n]), int64(n), minio.PutObjectPartOptions{})
		if perr != nil {
			return s.wrap("putting", key, perr)
		}
		parts = append(parts, minio.CompletePart{PartNumber: part.PartNumber, ETag: part.ETag})
		if n < len(buf) {
			break // short read: that was the last part
		}
	}
	if len(parts) == 0 {
		// Reachable only with a known size > 5 GiB and an empty reader.
		return fmt.Errorf("putting %s: empty body for a multipart upload", key)
	}
	_, err = s.core.CompleteMultipartUpload(ctx, s.cfg.Bucket, key, uploadID, parts, opts)
	if err != nil {
		if objectExists(err) {
			return nil // another writer completed first; abort ours
		}
		return s.wrap("putting", key, err)
	}
	completed = true
	return nil
}

// Get streams the object. The GET is sent before Get returns, so a missing
// object is reported here rather than on the first Read.
func (s *S3) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := validateKey(key); err != nil {
		return nil, err
	}
	// Core.GetObject is eager (unlike Client.GetObject): one request whose
	// body is returned as is.
	body, _, _, err := s.core.GetObject(ctx, s.cfg.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, s.wrap("getting", key, err)
	}
	return body, nil
}

// Stat returns the object's size.
func (s *S3) Stat(ctx context.Context, key string) (int64, error) {
	if err := validateKey(key); err != nil {
		return 0, err
	}
	info, err := s.client.StatObject(ctx, s.cfg.Bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return 0, s.wrap("stat", key, err)
	}
	return info.Size, nil
}

// objectExists reports whether a conditional write failed because the key
// is taken: 412 Precondition Failed.
func objectExists(err error) bool {
	resp := s3Error(err)
	return resp.StatusCode == http.StatusPreconditionFailed || resp.Code == minio.PreconditionFailed
}

// wrap classifies an S3 error: missing object → ErrNotFound, transport
// failures and server-side errors → ErrUnavailable, anything else (access
// denied, missing bucket…) keeps the server's code in the message.
func (s *S3) wrap(op, key string, err error) error {
	resp := s3Error(err)
	switch {
	case resp.Code == minio.NoSuchKey:
		return fmt.Errorf("%s %s: %w", op, key, ErrNotFound)
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s %s in %s: %w", op, key, s, err)
	case resp.StatusCode == 0 || resp.StatusCode >= 500:
		// No S3 response at all (dial, TLS, reset) or a server-side failure.
		return fmt.Errorf("%s %s in %s: %w: %v", op, key, s, ErrUnavailable, err)
	default:
		return fmt.Errorf("%s %s in %s: %s (%d %s)", op, key, s, resp.Message, resp.StatusCode, resp.Code)
	}
}

// s3Error extracts the server's error response; the zero value means the
// request got no S3 answer.
func s3Error(err error) minio.ErrorResponse {
	var resp minio.ErrorResponse
	if errors.As(err, &resp) {
		return resp
	}
	return minio.ToErrorResponse(err)
}

// bodyReader remembers how the caller's reader ended, so that a failure of
// the reader inside minio-go is reported as a body error, not as the store
// being unavailable.
type bodyReader struct {
	r   io.Reader
	n   int64
	eof bool
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n += int64(n)
	if err == io.EOF {
		b.eof = true
	} else if err != nil && b.err == nil {
		b.err = err
	}
	return n, err
}

// failure returns the body's own error, if the body (not the store) failed.
func (b *bodyReader) failure(size int64) error {
	if b.err != nil {
		return b.err
	}
	if size >= 0 && b.eof && b.n < size {
		return fmt.Errorf("short body: read %d of %d bytes", b.n, size)
	}
	return nil
}

var _ Store = (*S3)(nil)
