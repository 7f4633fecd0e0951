package unwrap

import (
	"context"
	"fmt"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/keyservice/card"
	"github.com/blindgate/blindgate/keyservice/forward"
)

var _ forward.CardOpener = (*Service)(nil)

// CheckBinding is forward's check that the ciphertext was bound to the
// merchant named, before anything is decrypted: ErrNotBound (which is
// forward.ErrNotBound) unless binding is the one issued for (merchant,
// jwe) by inspect or rewrap.
func (s *Service) CheckBinding(_ context.Context, merchant, jwe, binding string) error {
	kr, err := s.keys.Keyring()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSealed, err)
	}
	if !kr.VerifyBinding(merchant, []byte(jwe), binding) {
		return ErrNotBound
	}
	return nil
}

// OpenCard opens a stored card for keyservice/forward, which has already
// checked, limited and audited the forward: the same strict header checks,
// key lookup and plaintext parsing as reveal, and nothing of its own to
// record (the forward's audit records carry the rest).
//
// A stored card is not fresh and may have expired since it was captured:
// neither is checked, the processor decides on expiry as it does for any
// card on file. The number must still be one (digits, length, Luhn, brand):
// a ciphertext that opens to anything else is never sent.
//
// The CVC, when given, passes inspect's rules again (same checkout session
// as the card, fresh, the digit count of the card's brand): it must be the
// one captured with this card, within its lifetime.
func (s *Service) OpenCard(_ context.Context, jwe, cvcJWE string) (forward.Opened, error) {
	var ev audit.Event // open notes the kid there; Opened.Kid carries it
	_, sc, err := s.open(jwe, &ev)
	if err != nil {
		return forward.Opened{}, err
	}
	c, err := s.decryptCard(sc)
	if err != nil {
		return forward.Opened{}, err
	}
	brand, err := card.ValidatePAN(c.PAN)
	if err != nil {
		return forward.Opened{}, err
	}
	out := forward.Opened{Card: c, Kid: sc.hdr.Kid}
	if cvcJWE == "" {
		return out, nil
	}
	cvc, err := s.openCVC(cvcJWE, sc.hdr.SessionID, brand, s.cfg.Now())
	if err != nil {
		return forward.Opened{}, err
	}
	out.CVC, out.HasCVC = cvc, true
	return out, nil
}
