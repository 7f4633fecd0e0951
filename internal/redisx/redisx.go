// Package redisx builds the one go-redis client type Blindgate uses,
// redis.UniversalClient, from flags: a single node, a Sentinel group (with a
// master name) or a Cluster (several addresses) all come out the same.
package redisx

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/blindgate/blindgate/internal/secret"
)

// Config names the Redis deployment.
type Config struct {
	Addrs       string // comma-separated host:port list
	MasterName  string // Sentinel master name; empty for single node or Cluster
	Username    string
	PasswordRef string // env:NAME or file:PATH
	DB          int
	TLS         bool
}

// Validate checks the configuration's form.
func (c Config) Validate() error {
	if strings.TrimSpace(c.Addrs) == "" {
		return errors.New("redis: addrs is empty")
	}
	if err := secret.Validate(c.PasswordRef); err != nil {
		return fmt.Errorf("redis: password: %w", err)
	}
	return nil
}

// New returns a UniversalClient. It does not dial; callers Ping when they need to.
func New(c Config) (redis.UniversalClient, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	pw, err := secret.Resolve(c.PasswordRef)
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	var addrs []string
	for _, a := range strings.Split(c.Addrs, ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	opts := &redis.UniversalOptions{
		Addrs:        addrs,
		MasterName:   c.MasterName,
		Username:     c.Username,
		Password:     string(pw),
		DB:           c.DB,
		DialTimeout:  2 * time.Second,
		ReadTimeout:  time.Second,
		WriteTimeout: time.Second,
		PoolSize:     64,
	}
	if c.TLS {
		opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return redis.NewUniversalClient(opts), nil
}

// Pinger adapts a client to a readiness check.
type Pinger struct{ C redis.UniversalClient }

// Ping reports whether Redis answers.
func (p Pinger) Ping(ctx context.Context) error { return p.C.Ping(ctx).Err() }
