// Package clientaddr is the one answer to "who is asking" for the gateway's
// HTTP handlers (the merchant API, the checkout and the back office): the
// client address that keys per-IP limits and is the origin of audit records.
package clientaddr

import (
	"net/netip"

	"github.com/gofiber/fiber/v2"

	"github.com/blindgate/blindgate/gateway/clientip"
)

// Of returns the client address of c. Fiber's own ProxyHeader is not used:
// it takes the header as the client wrote it, whoever sent it; r counts only
// the hops added by trusted proxies. A nil r (or one without a header) means
// the socket's peer address is the client.
func Of(c *fiber.Ctx, r *clientip.Resolver) string {
	peer, _ := netip.AddrFromSlice(c.Context().RemoteIP())
	if r == nil || r.Header() == "" {
		return peer.Unmap().String()
	}
	var values []string
	for _, v := range c.Request().Header.PeekAll(r.Header()) {
		values = append(values, string(v))
	}
	return r.ClientIP(peer, values).String()
}
