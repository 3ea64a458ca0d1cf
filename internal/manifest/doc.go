// Package manifest parses and validates extension manifests (SPEC §4,
// "Manifest v2") and compiles their API endpoints into a [Router] that the
// gateway uses to match requests.
//
// [Parse] decodes strictly — unknown keys at any level, duplicate keys and
// wrong JSON types are issues — and then applies every §4 rule. All problems
// are collected into one [*ValidationError] whose issues carry JSON paths such
// as "$.api.endpoints[1].path", so an author sees every mistake at once.
//
// Choices where SPEC §4 is silent:
//
//   - Bundle paths (ui.entry, ui.routes[].iframePath, handler and entry
//     modules, precompiled, sbom) must be clean relative paths by the §2.1
//     rules: "/"-separated, no leading "/", no "\", no empty, ".", ".." or
//     hidden (leading ".") segments, no control characters, valid UTF-8,
//     at most 256 bytes. ui.entry and iframePath must be under "ui/", because
//     only ui/ is served to the iframe (§8.3).
//   - Endpoint paths: "/" alone is the root pattern (zero segments); otherwise
//     every segment is non-empty and is either ":name" (name matching
//     [A-Za-z_][A-Za-z0-9_]*, unique within the pattern) or a literal made of
//     RFC 3986 pchar characters without percent-encoding
//     (A-Z a-z 0-9 - . _ ~ ! $ & ' ( ) * + , ; = : @), not "." or "..".
//     A pattern is at most 1024 bytes.
//   - Precedence: two patterns are compared segment by segment from the left;
//     at the first position where one has a literal and the other a param,
//     the literal one wins. So "/a/:b" beats "/:a/b" and "/agreements/sync"
//     beats "/agreements/:id". Two patterns for the same method that differ
//     only in param names ("/a/:x", "/a/:y") would match the same paths with
//     the same precedence, so they are rejected as ambiguous.
//   - Matching: trailing slashes are not stripped: "/a/" has an empty last
//     segment, and a request path with an empty segment never matches. Each
//     segment of the escaped request path is percent-decoded separately, so
//     "%2F" yields a param value containing "/"; a segment that fails to
//     decode, or decodes to invalid UTF-8, makes the path match nothing.
//     Methods are compared exactly (uppercase); HEAD is matched as GET. When
//     nothing matches the method, the path's methods under other endpoints
//     are returned for a 405 Allow header.
//   - Numbers: JSON numbers with a zero fractional part count as integers
//     (as in JSON Schema). null is never accepted where a value is expected.
//   - Bounds: a manifest is at most 256 KiB, every list and map has at most
//     1000 entries, and an invalid manifest reports at most 100 issues.
//   - Optional strings (entry, sbom, precompiled values), when present, must
//     not be empty. "api" requires "endpoints", which may be empty.
//   - A "$schema" key is an unknown top-level key like any other; editors
//     should associate the schema by file name.
//   - Handler exports must be identifiers ([A-Za-z_][A-Za-z0-9_]*); that the
//     export really is a function of the handler signature is checked by the
//     runner when it instantiates the module (bad_handler), not here.
//   - ui.routes[].path must start with "/", and route paths are unique.
//   - precompiled keys are target names of [A-Za-z0-9_.-], at most 64 bytes.
//   - Asset globs use "/"-separated segments in which "**" matches any number
//     of directories and other segments use [path.Match] syntax; the first
//     segment must be the literal "ui", so a glob can never match outside ui/.
//
// The JSON Schema returned by [Schema] describes the same structure for
// editors. It cannot express file existence, uniqueness or route ambiguity;
// Parse is authoritative.
package manifest
