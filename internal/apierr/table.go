package apierr

import (
	"slices"
	"sync"
)

// table is every *Error made by New, in declaration order. New runs for the
// variables of codes.go during package initialisation, so the table is the
// code list of codes.go without a second copy to keep in step: the docs test
// and the checkout's message test read it through Codes.
var table struct {
	mu   sync.Mutex
	errs []*Error
}

func register(e *Error) {
	table.mu.Lock()
	defer table.mu.Unlock()
	table.errs = append(table.errs, e)
}

// Codes lists every declared error, in the order of codes.go. The values are
// shared: do not modify them.
func Codes() []*Error {
	table.mu.Lock()
	defer table.mu.Unlock()
	return slices.Clone(table.errs)
}
