package wire

// Card brands as the key service names them (InspectResponse.Brand,
// RewrapResponse.Brand) and the gateway stores, searches and shows them.
// The values are part of the contract and never renamed; keyservice/card
// detects them (its test proves its table and this list agree), the
// checkout JS mirrors them.
const (
	BrandVisa       = "visa"
	BrandMastercard = "mastercard"
	BrandAmex       = "amex"
	BrandDiscover   = "discover"
	BrandJCB        = "jcb"
	BrandDiners     = "diners"
	BrandUnionPay   = "unionpay"
	BrandMaestro    = "maestro"
)

// BrandInfo is a brand's wire id and the name people read.
type BrandInfo struct{ ID, Name string }

// Brands lists every brand, in display order. It returns a fresh slice.
func Brands() []BrandInfo {
	return []BrandInfo{
		{BrandVisa, "Visa"}, {BrandMastercard, "Mastercard"}, {BrandAmex, "American Express"},
		{BrandDiscover, "Discover"}, {BrandJCB, "JCB"}, {BrandDiners, "Diners Club"},
		{BrandUnionPay, "UnionPay"}, {BrandMaestro, "Maestro"},
	}
}
