package forward

import (
	"embed"
	"encoding/json"
	"fmt"
	"path"

	"github.com/blindgate/blindgate/keyservice/destinations"
	"github.com/blindgate/blindgate/keyservice/wire"
)

//go:embed presets/*.json
var presetFiles embed.FS

// Preset is a starting point for a processor: a destination the operator
// adds (with its own merchants) and a template the merchant fills in.
type Preset struct {
	Name  string `json:"-"`
	About string `json:"about"`
	// Reference names the processor's public pages the preset was checked
	// against, and what they did not confirm.
	Reference   string                   `json:"reference"`
	Destination destinations.Destination `json:"destination"`
	Template    wire.ForwardTemplate     `json:"template"`
}

// Presets returns the bundled processor presets.
func Presets() ([]Preset, error) {
	entries, err := presetFiles.ReadDir("presets")
	if err != nil {
		return nil, err
	}
	var out []Preset
	for _, e := range entries {
		b, err := presetFiles.ReadFile(path.Join("presets", e.Name()))
		if err != nil {
			return nil, err
		}
		var p Preset
		if err := json.Unmarshal(b, &p); err != nil {
			return nil, fmt.Errorf("preset %s: %w", e.Name(), err)
		}
		p.Name = e.Name()
		out = append(out, p)
	}
	return out, nil
}
