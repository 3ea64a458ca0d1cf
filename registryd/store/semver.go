package store

import (
	"sort"
	"strconv"
	"strings"

	"github.com/extedge/extedge/internal/registryapi"
)

// CompareSemver orders two semver 2.0 versions by precedence (build
// metadata ignored): -1, 0 or +1. Invalid input compares as text.
func CompareSemver(a, b string) int {
	a, _, _ = strings.Cut(a, "+")
	b, _, _ = strings.Cut(b, "+")
	ac, apre, _ := strings.Cut(a, "-")
	bc, bpre, _ := strings.Cut(b, "-")
	as, bs := strings.Split(ac, "."), strings.Split(bc, ".")
	for i := 0; i < 3 && i < len(as) && i < len(bs); i++ {
		if c := compareIdent(as[i], bs[i], true); c != 0 {
			return c
		}
	}
	switch {
	case apre == "" && bpre == "":
		return 0
	case apre == "":
		return 1 // a release beats its pre-releases
	case bpre == "":
		return -1
	}
	ap, bp := strings.Split(apre, "."), strings.Split(bpre, ".")
	for i := 0; i < len(ap) && i < len(bp); i++ {
		if c := compareIdent(ap[i], bp[i], false); c != 0 {
			return c
		}
	}
	return cmpInt(len(ap), len(bp))
}

// compareIdent compares numeric identifiers numerically and others as
// ASCII; numeric ones sort before alphanumeric ones.
func compareIdent(a, b string, core bool) int {
	an, aerr := strconv.ParseUint(a, 10, 64)
	bn, berr := strconv.ParseUint(b, 10, 64)
	switch {
	case aerr == nil && berr == nil:
		if an < bn {
			return -1
		} else if an > bn {
			return 1
		}
		return 0
	case aerr == nil && !core:
		return -1
	case berr == nil && !core:
		return 1
	}
	return strings.Compare(a, b)
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func sortVersionsDesc(vs []registryapi.Version) {
	sort.SliceStable(vs, func(i, j int) bool { return CompareSemver(vs[i].Version, vs[j].Version) > 0 })
}
