// Package gateway is the public zone of Blindgate: the hosted checkout, the
// merchant API and the back office. Its subpackages hold ciphertexts and
// masked card fields only; imports_test.go proves that nothing under gateway/
// or cmd/gateway can reach code that parses or decrypts a card.
package gateway
