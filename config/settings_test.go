package config

import (
	"testing"
	"time"
)

func TestRespawnLimitText(t *testing.T) {
	tests := []struct {
		in   string
		want RespawnLimit
		err  bool
	}{
		{"10/1m", RespawnLimit{10, time.Minute}, false},
		{"0", RespawnLimit{}, false},
		{"3/500ms", RespawnLimit{3, 500 * time.Millisecond}, false},
		{"10", RespawnLimit{}, true},
		{"x/1m", RespawnLimit{}, true},
		{"10/0s", RespawnLimit{}, true},
		{"-1/1m", RespawnLimit{}, true},
		{"2/1ns", RespawnLimit{}, true},
		{"2000/1ms", RespawnLimit{}, true},
		{"1000/1s", RespawnLimit{1000, time.Second}, false},
		{"0/1ns", RespawnLimit{0, time.Nanosecond}, false},
	}
	for _, tc := range tests {
		var r RespawnLimit
		err := r.UnmarshalText([]byte(tc.in))
		if (err != nil) != tc.err || (!tc.err && r != tc.want) {
			t.Errorf("%q: %+v, %v", tc.in, r, err)
		}
	}
	if s := (RespawnLimit{10, time.Minute}).String(); s != "10/1m" {
		t.Errorf("String() = %q", s)
	}
}
