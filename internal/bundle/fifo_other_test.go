//go:build !unix

package bundle

import "errors"

func mkfifo(string) error { return errors.ErrUnsupported }
