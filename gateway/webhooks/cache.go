package webhooks

import (
	"sync"
	"time"
)

// DefaultEndpointCache is Config.EndpointCache's default: how stale a
// gateway's view of a merchant's endpoints may be when it queues an event.
const DefaultEndpointCache = time.Second

// maxCachedMerchants bounds the cache's memory: past it, expired entries
// go, and if none has expired the whole cache does.
const maxCachedMerchants = 10_000

// endpointCache keeps, per merchant, the ids of its endpoints as last read,
// so that an event (one per minted token) does not read the store each
// time. An entry serves for ttl after its read began; a change made through
// this Service forgets the merchant's entry at once, and a read that began
// before a change is not kept (gen), so this gateway never serves from a
// read older than its own last change. Only ids are kept: an event needs
// nothing else, and the secrets stay in the store.
type endpointCache struct {
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	gen     uint64 // bumped by every change
	entries map[string]cachedEndpoints
}

type cachedEndpoints struct {
	ids  []string
	read time.Time // when the read that filled it began
}

func newEndpointCache(ttl time.Duration, now func() time.Time) *endpointCache {
	return &endpointCache{ttl: ttl, now: now, entries: map[string]cachedEndpoints{}}
}

// get returns merchant's endpoint ids if a fresh entry holds them; else a
// ticket for put.
func (c *endpointCache) get(merchant string) (ids []string, ok bool, ticket cacheTicket) {
	now := c.now()
	if c.ttl <= 0 {
		return nil, false, cacheTicket{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, found := c.entries[merchant]
	if found && now.Sub(e.read) < c.ttl && !now.Before(e.read) {
		return e.ids, true, cacheTicket{}
	}
	return nil, false, cacheTicket{gen: c.gen, read: now, valid: true}
}

// cacheTicket is a miss's licence to fill the entry with what it reads.
type cacheTicket struct {
	gen   uint64
	read  time.Time
	valid bool
}

// put keeps ids as merchant's, unless a change came since t was issued.
func (c *endpointCache) put(merchant string, ids []string, t cacheTicket) {
	if !t.valid {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != t.gen {
		return
	}
	if len(c.entries) >= maxCachedMerchants {
		for m, e := range c.entries {
			if t.read.Sub(e.read) >= c.ttl {
				delete(c.entries, m)
			}
		}
		if len(c.entries) >= maxCachedMerchants {
			clear(c.entries)
		}
	}
	c.entries[merchant] = cachedEndpoints{ids: ids, read: t.read}
}

// forget drops merchant's entry and voids every read in flight.
func (c *endpointCache) forget(merchant string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.entries, merchant)
}
