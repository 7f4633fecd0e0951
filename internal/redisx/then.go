package redisx

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Then is work one store's script does after another store's own work, in
// the same script: one atomic round trip instead of two (a checkout's
// limits then its session attempt; a token's write then its session's
// completion). Lua is the body of a Lua function then_(K, A) over the
// work's own keys (Keys) and arguments (Args), whose value is the reply;
// the script that runs it may append arguments of its own, which it
// documents. Client is the client the keys live on: a script on another
// client, or on a Cluster (whose slots one script cannot span), runs the
// work alone after its own (Alone), with the same outcome but not atomic
// with it.
type Then struct {
	Client redis.UniversalClient
	Lua    string
	Keys   []string
	Args   []any
}

// Joins reports whether a script on rdb can run t inside itself.
func (t Then) Joins(rdb redis.UniversalClient) bool {
	_, cluster := rdb.(*redis.ClusterClient)
	return t.Client == rdb && !cluster
}

// Func is the Lua that defines then_ from t.Lua, for a script to include.
func Func(lua string) string { return "local function then_(K, A)\n" + lua + "\nend\n" }

// Alone runs t as a script of its own, with extra appended to its
// arguments. A nil reply is nil, not an error.
func (t Then) Alone(ctx context.Context, extra ...any) (any, error) {
	args := append(append([]any(nil), t.Args...), extra...)
	v, err := alone.Script(t.Lua).Run(ctx, t.Client, t.Keys, args...).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	return v, err
}

var alone = NewComposer("%sreturn then_(KEYS, ARGV)")

// Composer makes the scripts of one template, whose %s is where a Then's
// function goes (Func), once per Then.Lua: a composed script keeps its
// hash and stays loaded in Redis (EVALSHA) like a script made at start,
// and a call costs a map lookup, not a new script.
type Composer struct {
	template string
	scripts  sync.Map // Then.Lua -> *redis.Script
}

// NewComposer returns the Composer of template.
func NewComposer(template string) *Composer { return &Composer{template: template} }

// Script is the template with lua's function in it ("" for none: then_
// is nil).
func (c *Composer) Script(lua string) *redis.Script {
	if s, ok := c.scripts.Load(lua); ok {
		return s.(*redis.Script)
	}
	fn := "local then_ = nil\n"
	if lua != "" {
		fn = Func(lua)
	}
	s, _ := c.scripts.LoadOrStore(lua, redis.NewScript(fmt.Sprintf(c.template, fn)))
	return s.(*redis.Script)
}
