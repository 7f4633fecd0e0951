package checkout

import (
	"maps"
	"slices"
	"strconv"
	"strings"
)

// currencyExponents is the one list of the currencies a checkout session may
// carry, with each one's ISO 4217 minor unit: the number of decimal places
// between the minor unit an amount is counted in and the currency's major
// unit (2500 EUR cents are 25.00 EUR; 2500 JPY are 2500 yen). It holds the
// active ISO 4217 currencies a card can be charged in; fund codes (BOV, CLF,
// USN...), precious metals and testing codes (XAU, XTS...) are left out.
//
// The session API (gateway/sessions) validates against it, and the page gets
// the amount already in major units (DecimalAmount), so the browser needs no
// copy of this table: it only formats the decimal for the shopper's locale.
var currencyExponents = map[string]int{
	"AED": 2, "AFN": 2, "ALL": 2, "AMD": 2, "ANG": 2, "AOA": 2, "ARS": 2, "AUD": 2, "AWG": 2, "AZN": 2,
	"BAM": 2, "BBD": 2, "BDT": 2, "BGN": 2, "BHD": 3, "BIF": 0, "BMD": 2, "BND": 2, "BOB": 2, "BRL": 2,
	"BSD": 2, "BTN": 2, "BWP": 2, "BYN": 2, "BZD": 2,
	"CAD": 2, "CDF": 2, "CHF": 2, "CLP": 0, "CNY": 2, "COP": 2, "CRC": 2, "CUP": 2, "CVE": 2, "CZK": 2,
	"DJF": 0, "DKK": 2, "DOP": 2, "DZD": 2,
	"EGP": 2, "ERN": 2, "ETB": 2, "EUR": 2,
	"FJD": 2, "FKP": 2,
	"GBP": 2, "GEL": 2, "GHS": 2, "GIP": 2, "GMD": 2, "GNF": 0, "GTQ": 2, "GYD": 2,
	"HKD": 2, "HNL": 2, "HTG": 2, "HUF": 2,
	"IDR": 2, "ILS": 2, "INR": 2, "IQD": 3, "IRR": 2, "ISK": 0,
	"JMD": 2, "JOD": 3, "JPY": 0,
	"KES": 2, "KGS": 2, "KHR": 2, "KMF": 0, "KPW": 2, "KRW": 0, "KWD": 3, "KYD": 2, "KZT": 2,
	"LAK": 2, "LBP": 2, "LKR": 2, "LRD": 2, "LSL": 2, "LYD": 3,
	"MAD": 2, "MDL": 2, "MGA": 2, "MKD": 2, "MMK": 2, "MNT": 2, "MOP": 2, "MRU": 2, "MUR": 2, "MVR": 2,
	"MWK": 2, "MXN": 2, "MYR": 2, "MZN": 2,
	"NAD": 2, "NGN": 2, "NIO": 2, "NOK": 2, "NPR": 2, "NZD": 2,
	"OMR": 3,
	"PAB": 2, "PEN": 2, "PGK": 2, "PHP": 2, "PKR": 2, "PLN": 2, "PYG": 0,
	"QAR": 2,
	"RON": 2, "RSD": 2, "RUB": 2, "RWF": 0,
	"SAR": 2, "SBD": 2, "SCR": 2, "SDG": 2, "SEK": 2, "SGD": 2, "SHP": 2, "SLE": 2, "SOS": 2, "SRD": 2,
	"SSP": 2, "STN": 2, "SVC": 2, "SYP": 2, "SZL": 2,
	"THB": 2, "TJS": 2, "TMT": 2, "TND": 3, "TOP": 2, "TRY": 2, "TTD": 2, "TWD": 2, "TZS": 2,
	"UAH": 2, "UGX": 0, "USD": 2, "UYU": 2, "UZS": 2,
	"VED": 2, "VES": 2, "VND": 0, "VUV": 0,
	"WST": 2,
	"XAF": 0, "XCD": 2, "XCG": 2, "XOF": 0, "XPF": 0,
	"YER": 2,
	"ZAR": 2, "ZMW": 2, "ZWG": 2,
}

// MaxAmount bounds a session's amount in minor units: twelve digits, well
// inside the integers a browser represents exactly, and beyond any card
// payment.
const MaxAmount int64 = 999_999_999_999

// CurrencyExponent returns the ISO 4217 minor unit of an upper-case currency
// code ("EUR" 2, "JPY" 0, "KWD" 3); ok is false for a code not in the list.
func CurrencyExponent(code string) (exponent int, ok bool) {
	exponent, ok = currencyExponents[code]
	return exponent, ok
}

// Currencies lists the accepted currency codes, sorted.
func Currencies() []string {
	return slices.Sorted(maps.Keys(currencyExponents))
}

// DecimalAmount writes an amount in minor units as a decimal in major units
// with exactly exponent decimal places (2500, 2: "25.00"; 5, 3: "0.005";
// 700, 0: "700"), by string arithmetic so that no amount is rounded. A
// negative amount or exponent gives "".
func DecimalAmount(minor int64, exponent int) string {
	if minor < 0 || exponent < 0 {
		return ""
	}
	s := strconv.FormatInt(minor, 10)
	if exponent == 0 {
		return s
	}
	if len(s) <= exponent {
		s = strings.Repeat("0", exponent-len(s)+1) + s
	}
	return s[:len(s)-exponent] + "." + s[len(s)-exponent:]
}
