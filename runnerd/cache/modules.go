package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"go.uber.org/zap"

	"github.com/extedge/extedge/internal/execapi"
	"github.com/extedge/extedge/runnerd/engine"
)

// precompiledTarget is this runner's key in a manifest's precompiled map.
var precompiledTarget = map[string]string{"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu"}[runtime.GOARCH]

// module returns the compiled module at path of b: from memory, else from
// the disk cache, else compiled (and then written to disk). Concurrent
// misses for one module share one load; each waits for it until its ctx
// ends.
func (c *Cache) module(ctx context.Context, b *verifiedBundle, path string) (*engine.Module, error) {
	key := b.Hash + "|" + path
	if m, ok := c.modules.Get(key); ok {
		c.memHits.Add(1)
		return m, nil
	}
	return shared(ctx, &c.moduleFlight, key, func() (*engine.Module, error) {
		if m, ok := c.modules.Get(key); ok {
			c.memHits.Add(1)
			return m, nil
		}
		m, err := c.loadModule(b, path)
		if err != nil {
			return nil, err
		}
		c.modules.Add(key, m)
		c.modBytes.Add(m.Size)
		for c.modBytes.Load() > c.cfg.MaxModuleBytes && c.modules.Len() > 1 {
			c.modules.RemoveOldest()
		}
		return m, nil
	})
}

func (c *Cache) compiledPath(hash, path string) string {
	sum := sha256.Sum256([]byte(path))
	return filepath.Join(c.compiledDir(hash), hex.EncodeToString(sum[:16])+".cwasm")
}

func (c *Cache) loadModule(b *verifiedBundle, path string) (*engine.Module, error) {
	if !b.files[path] {
		return nil, &execapi.Error{Code: execapi.CodeBadHandler, Message: "module " + path + " is not in the bundle"}
	}
	cpath := c.compiledPath(b.Hash, path)
	if m := c.loadCompiled(cpath); m != nil {
		return m, nil
	}
	if m := c.trustedPrecompiled(b, path); m != nil {
		return m, nil
	}
	// Checked against the seal again: the file may have changed since the
	// bundle was loaded.
	wasm, err := b.ReadFile(b.dir, path)
	if err != nil {
		c.log.Warn("module changed since verification, evicting the bundle", zap.String("content_hash", b.Hash), zap.Error(err))
		c.Evict(b.Hash)
		return nil, unavailable("bundle %s changed on disk; retry", b.Hash)
	}
	c.compiles.Add(1)
	m, err := c.cfg.Engine.Compile(wasm)
	if err != nil {
		return nil, &execapi.Error{Code: execapi.CodeBadHandler, Message: "module " + path + " does not compile"}
	}
	if n := c.storeCompiled(cpath, m); n > 0 {
		c.addDiskBytes(b.Hash, n)
	}
	return m, nil
}

// trustedPrecompiled loads the publisher's precompiled artefact for the
// entry module when --trust-precompiled is set (§6.4); any failure falls
// back to compiling.
func (c *Cache) trustedPrecompiled(b *verifiedBundle, path string) *engine.Module {
	if !c.cfg.TrustPrecompiled || precompiledTarget == "" {
		return nil
	}
	pre, ok := b.Manifest.Precompiled[precompiledTarget]
	if !ok || b.Manifest.Entry == "" {
		return nil
	}
	if entry := strings.SplitN(b.Manifest.Entry, "#", 2)[0]; entry != path && entry+".wasm" != path {
		return nil
	}
	data, err := b.ReadFile(b.dir, pre)
	if err != nil {
		return nil
	}
	m, err := c.cfg.Engine.Deserialize(data)
	if err != nil {
		c.log.Warn("publisher precompiled module does not load, compiling instead", zap.String("content_hash", b.Hash))
		return nil
	}
	return m
}

// loadCompiled loads our own serialized module at cpath if its bytes still
// hash to the SHA-256 written beside it. Such modules were produced by
// this runner's engine (same fingerprint) from verified wasm, so they may
// be loaded; a changed one is native code of unknown origin, discarded
// like an unloadable one (and the module recompiled).
func (c *Cache) loadCompiled(cpath string) *engine.Module {
	want, err := os.ReadFile(cpath + digestSuffix)
	if err != nil {
		os.Remove(cpath) // unsealed (or none): recompile
		return nil
	}
	f, err := os.Open(cpath)
	if err != nil {
		return nil
	}
	h := sha256.New()
	_, err = io.Copy(h, f)
	f.Close()
	if err == nil && hex.EncodeToString(h.Sum(nil)) == strings.TrimSpace(string(want)) {
		if m, err := c.cfg.Engine.DeserializeFile(cpath); err == nil {
			c.diskHits.Add(1)
			return m
		}
	}
	c.log.Warn("discarding changed or unloadable compiled module", zap.String("path", cpath))
	os.Remove(cpath)
	os.Remove(cpath + digestSuffix)
	return nil
}

// digestSuffix names the file holding a serialized module's SHA-256.
const digestSuffix = ".sha256"

// storeCompiled writes a serialized module and then its SHA-256
// atomically; failures only cost a recompile later. Compiled files are
// never modified in place: loaded modules map them (DeserializeFile), so a
// truncated mapping would crash the process. New versions are renamed in
// and old ones unlinked. It returns the bytes written.
func (c *Cache) storeCompiled(cpath string, m *engine.Module) int64 {
	data, err := m.Serialize()
	if err != nil {
		return 0
	}
	if err := os.MkdirAll(filepath.Dir(cpath), 0o750); err != nil {
		return 0
	}
	sum := sha256.Sum256(data)
	digest := []byte(hex.EncodeToString(sum[:]) + "\n")
	if !writeAtomic(cpath, data) || !writeAtomic(cpath+digestSuffix, digest) {
		os.Remove(cpath)
		return 0
	}
	return int64(len(data) + len(digest))
}

// writeAtomic writes data to a temporary file next to p and renames it to p.
func writeAtomic(p string, data []byte) bool {
	tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return false
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if werr != nil || cerr != nil || os.Rename(tmp.Name(), p) != nil {
		os.Remove(tmp.Name())
		return false
	}
	return true
}
