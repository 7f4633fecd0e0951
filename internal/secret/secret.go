// Package secret resolves secret references. Secrets are never written inline
// in flags or files (they would land in shell history and ps output); they are
// named as "env:NAME" or "file:/path".
package secret

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
)

// ErrReference is returned for a reference that is not env: or file:.
var ErrReference = errors.New("secret: reference must be env:NAME or file:PATH")

// Resolve returns the secret a reference names, trimmed of surrounding white
// space. An empty reference resolves to nil with no error (no secret set).
func Resolve(ref string) ([]byte, error) {
	switch {
	case ref == "":
		return nil, nil
	case strings.HasPrefix(ref, "env:"):
		name := strings.TrimPrefix(ref, "env:")
		v, ok := os.LookupEnv(name)
		if !ok || v == "" {
			return nil, fmt.Errorf("secret: environment variable %s is not set", name)
		}
		return []byte(strings.TrimSpace(v)), nil
	case strings.HasPrefix(ref, "file:"):
		path := strings.TrimPrefix(ref, "file:")
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("secret: read %s: %w", path, err)
		}
		return bytes.TrimSpace(b), nil
	default:
		return nil, ErrReference
	}
}

// Validate checks the form of a reference without reading it.
func Validate(ref string) error {
	if ref == "" || strings.HasPrefix(ref, "env:") || strings.HasPrefix(ref, "file:") {
		return nil
	}
	return ErrReference
}
