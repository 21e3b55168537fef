package models

import (
	"reflect"
	"testing"
)

func TestParseChange(t *testing.T) {
	cases := []struct {
		payload string
		want    Change
		wantErr bool
	}{
		{"*", Change{All: true}, false},
		{"t:1", Change{TokenIDs: []uint{1}}, false},
		{"t:4,5,600", Change{TokenIDs: []uint{4, 5, 600}}, false},
		{"u:7,8", Change{UserIDs: []uint{7, 8}}, false},
		{"", Change{}, true},
		{"t:", Change{}, true},
		{"x:1", Change{}, true},
		{"t:1,,2", Change{}, true},
		{"u:-1", Change{}, true},
		{"t1,2", Change{}, true},
	}
	for _, tc := range cases {
		got, err := ParseChange(tc.payload)
		if (err != nil) != tc.wantErr || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseChange(%q): got %+v, %v; want %+v, error %v", tc.payload, got, err, tc.want, tc.wantErr)
		}
	}
}
