// Package envflag gives flags their defaults from the environment, so every
// setting of a service can come from a flag or from PREFIX_NAME: containers
// set the environment, people type flags. A malformed value falls back to the
// default; Config.Validate then judges the result.
package envflag

import (
	"os"
	"strconv"
	"time"
)

// Env reads variables named Prefix + NAME.
type Env string

// String returns the variable, or def when it is unset.
func (e Env) String(name, def string) string {
	if v, ok := os.LookupEnv(string(e) + name); ok {
		return v
	}
	return def
}

// Bool returns the variable parsed with strconv.ParseBool, or def.
func (e Env) Bool(name string, def bool) bool {
	if b, err := strconv.ParseBool(e.String(name, "")); err == nil {
		return b
	}
	return def
}

// Int returns the variable as an integer, or def.
func (e Env) Int(name string, def int) int {
	if n, err := strconv.Atoi(e.String(name, "")); err == nil {
		return n
	}
	return def
}

// Duration returns the variable parsed with time.ParseDuration, or def.
func (e Env) Duration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(e.String(name, "")); err == nil {
		return d
	}
	return def
}
