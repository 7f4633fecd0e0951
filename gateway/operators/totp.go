package operators

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"
)

// TOTP parameters: RFC 6238 defaults that every authenticator app reads.
const (
	TOTPPeriod = 30 * time.Second
	TOTPDigits = 6
	// totpSkew accepts the codes of one step before and after now, for
	// clock drift between the phone and the server (RFC 6238 section 5.2).
	totpSkew = 1
	// qrSize is the enrolment QR code's width and height in pixels.
	qrSize = 256
)

var hotpOpts = hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// totpStep is the RFC 6238 time step counter of t.
func totpStep(t time.Time) int64 { return t.Unix() / int64(TOTPPeriod/time.Second) }

// matchTOTP returns the time step whose code equals code, looking at now's
// step and totpSkew steps either side. Every candidate is computed, so the
// time taken does not tell which one matched.
func matchTOTP(secret, code string, now time.Time) (step int64, ok bool) {
	code = strings.TrimSpace(code)
	if len(code) != TOTPDigits || secret == "" {
		return 0, false
	}
	for _, c := range code {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	base := totpStep(now)
	for off := int64(-totpSkew); off <= totpSkew; off++ {
		s := base + off
		if s < 0 {
			continue
		}
		// hotp.ValidateCustom compares with subtle.ConstantTimeCompare.
		if good, err := hotp.ValidateCustom(code, uint64(s), secret, hotpOpts); err == nil && good && !ok {
			step, ok = s, true
		}
	}
	return step, ok
}

// EnrollTOTP starts TOTP enrolment for operator id: it makes a new secret,
// keeps it as pending and returns it in three forms: base32 secret (for
// typing), otpauth:// URL and a QR code PNG of that URL. The secret becomes
// active only after ConfirmTOTP with a code from it; until then an existing
// second factor keeps working. The caller must show the result once, over
// the authenticated session only, and never log it.
func (s *Service) EnrollTOTP(ctx context.Context, id string) (secret, otpauthURL string, qrPNG []byte, err error) {
	op, err := s.store.Get(ctx, id)
	if err != nil {
		return "", "", nil, err
	}
	if op.Disabled {
		return "", "", nil, ErrDisabled
	}
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer:      s.cfg.Issuer,
		AccountName: op.Username,
		Period:      uint(TOTPPeriod / time.Second),
		SecretSize:  20, // 160 bits, RFC 4226 recommendation
		Digits:      otp.DigitsSix,
		Algorithm:   otp.AlgorithmSHA1, // the one algorithm all authenticator apps support
	})
	if err != nil {
		return "", "", nil, fmt.Errorf("operators: totp secret: %w", err)
	}
	img, err := key.Image(qrSize, qrSize)
	if err != nil {
		return "", "", nil, fmt.Errorf("operators: totp qr code: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return "", "", nil, fmt.Errorf("operators: totp qr png: %w", err)
	}
	_, err = s.store.Update(ctx, id, func(o *Operator) error {
		if o.Disabled {
			return ErrDisabled
		}
		o.TOTPPending = key.Secret()
		return nil
	})
	if err != nil {
		return "", "", nil, err
	}
	return key.Secret(), key.URL(), buf.Bytes(), nil
}

// ConfirmTOTP finishes enrolment: code must come from the pending secret
// (within the skew). The confirmed step counts as used, so the same code
// cannot log in afterwards. ErrBadCredentials for a wrong code, ErrInvalid
// when no enrolment is pending.
func (s *Service) ConfirmTOTP(ctx context.Context, id, code string) error {
	now := s.cfg.Now()
	_, err := s.store.Update(ctx, id, func(o *Operator) error {
		if o.Disabled {
			return ErrDisabled
		}
		if o.TOTPPending == "" {
			return fmt.Errorf("%w: no TOTP enrolment in progress", ErrInvalid)
		}
		step, ok := matchTOTP(o.TOTPPending, code, now)
		if !ok {
			return ErrBadCredentials
		}
		o.TOTPSecret, o.TOTPPending, o.TOTPEnabled = o.TOTPPending, "", true
		o.TOTPLastStep = max(o.TOTPLastStep, step)
		return nil
	})
	return err
}

// ResetTOTP removes an operator's second factor (lost phone). The HTTP
// layer should allow it to admins only and make the operator enrol again at
// the next login.
func (s *Service) ResetTOTP(ctx context.Context, id string) error {
	_, err := s.store.Update(ctx, id, func(o *Operator) error {
		o.TOTPSecret, o.TOTPPending, o.TOTPEnabled, o.TOTPLastStep = "", "", false, 0
		return nil
	})
	return err
}
