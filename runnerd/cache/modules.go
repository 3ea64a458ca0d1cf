package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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
	key := b.hash + "|" + path
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
	cpath := c.compiledPath(b.hash, path)
	// Our own serialized modules were produced by this runner's engine
	// (same fingerprint) from verified wasm, so they may be loaded.
	if _, err := os.Stat(cpath); err == nil {
		if m, err := c.cfg.Engine.DeserializeFile(cpath); err == nil {
			c.diskHits.Add(1)
			return m, nil
		}
		c.log.Warn("discarding unloadable compiled module", zap.String("path", cpath))
		os.Remove(cpath)
	}
	if m := c.trustedPrecompiled(b, path); m != nil {
		return m, nil
	}
	wasm, err := os.ReadFile(filepath.Join(b.dir, filepath.FromSlash(path)))
	if err != nil {
		return nil, &execapi.Error{Code: execapi.CodeInternal, Message: "reading module from the cache"}
	}
	c.compiles.Add(1)
	m, err := c.cfg.Engine.Compile(wasm)
	if err != nil {
		return nil, &execapi.Error{Code: execapi.CodeBadHandler, Message: "module " + path + " does not compile"}
	}
	if n := c.storeCompiled(cpath, m); n > 0 {
		c.addDiskBytes(b.hash, n)
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
	pre, ok := b.manifest.Precompiled[precompiledTarget]
	if !ok || b.manifest.Entry == "" {
		return nil
	}
	if entry := strings.SplitN(b.manifest.Entry, "#", 2)[0]; entry != path && entry+".wasm" != path {
		return nil
	}
	data, err := os.ReadFile(filepath.Join(b.dir, filepath.FromSlash(pre)))
	if err != nil {
		return nil
	}
	m, err := c.cfg.Engine.Deserialize(data)
	if err != nil {
		c.log.Warn("publisher precompiled module does not load, compiling instead", zap.String("content_hash", b.hash))
		return nil
	}
	return m
}

// storeCompiled writes a serialized module atomically; failures only cost
// a recompile later. Compiled files are never modified in place: loaded
// modules map them (DeserializeFile), so a truncated mapping would crash
// the process. New versions are renamed in and old ones unlinked.
func (c *Cache) storeCompiled(cpath string, m *engine.Module) int64 {
	data, err := m.Serialize()
	if err != nil {
		return 0
	}
	if err := os.MkdirAll(filepath.Dir(cpath), 0o750); err != nil {
		return 0
	}
	tmp, err := os.CreateTemp(filepath.Dir(cpath), ".tmp-*")
	if err != nil {
		return 0
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if werr != nil || cerr != nil || os.Rename(tmp.Name(), cpath) != nil {
		os.Remove(tmp.Name())
		return 0
	}
	return int64(len(data))
}
