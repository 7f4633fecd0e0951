package backoffice

import (
	"context"

	"github.com/blindgate/blindgate/gateway/merchants"
)

// Merchants is the part of the merchant store the back office uses: a
// merchant's name, so pages name merchants rather than show their ids.
type Merchants interface {
	Get(ctx context.Context, id string) (merchants.Merchant, error)
}

// MerchantNames maps the merchant ids among ids that the operator may see
// to their names. A merchant the store does not answer for (not found, or
// the store down) is left out and shown by id: a name is a convenience,
// never a reason to withhold a page.
func (s *Service) MerchantNames(ctx context.Context, a Actor, ids ...string) map[string]string {
	names := map[string]string{}
	if s.d.Merchants == nil {
		return names
	}
	for _, id := range ids {
		if _, done := names[id]; done || id == "" || !a.Op.MaySee(id) {
			continue
		}
		names[id] = ""
		if m, err := s.d.Merchants.Get(ctx, id); err == nil {
			names[id] = m.Name
		}
	}
	for id, n := range names {
		if n == "" {
			delete(names, id)
		}
	}
	return names
}
