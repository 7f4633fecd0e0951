//go:build tools

// Package deps pins the project's third-party modules while packages are being built.
package deps

import (
	_ "github.com/chromedp/chromedp"
	_ "github.com/go-jose/go-jose/v4"
	_ "github.com/go-redis/redis_rate/v10"
	_ "github.com/gofiber/fiber/v2"
	_ "github.com/lestrrat-go/jwx/v2/jwe"
	_ "github.com/lestrrat-go/jwx/v2/jwk"
	_ "github.com/lestrrat-go/jwx/v2/jws"
	_ "github.com/pquerna/otp/totp"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/redis/go-redis/v9"
	_ "github.com/testcontainers/testcontainers-go"
	_ "go.etcd.io/bbolt"
	_ "golang.org/x/crypto/argon2"
)
