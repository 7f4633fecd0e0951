package main

import (
	"slices"
	"testing"

	"github.com/blindgate/blindgate/deploy/images"
)

func TestParseImages(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []images.Image
		wantErr bool
	}{
		{name: "ok/defaults", in: "keyservice,gateway,admin,shop,egress", want: images.Defaults()},
		{name: "ok/spaces-and-empty-items", in: " redis, ,probe ", want: []images.Image{images.Redis, images.Probe}},
		{name: "error/unknown", in: "keyservice,nginx", wantErr: true},
		{name: "error/empty", in: " , ", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseImages(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
