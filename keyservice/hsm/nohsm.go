//go:build !hsm

package hsm

func open(Config, string) (Token, error) { return nil, ErrNotBuilt }
