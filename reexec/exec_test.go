package reexec

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestHandoffDocument(t *testing.T) {
	bind, err := Bind()
	if err != nil {
		t.Fatal(err)
	}
	h := Handoff{Generation: 3, Signals: []int{10}, Services: []HandoffService{
		{Pid: 42, State: "running", Notify: -1},
	}}
	doc, err := encodeHandoff(bind, &h)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeHandoff(doc)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*got, h) {
		t.Errorf("got %+v, want %+v", *got, h)
	}

	other := bind
	other.StartTime++
	foreign, _ := encodeHandoff(other, &h)
	older := fmt.Sprintf("handoff version 1, this vigil reads %d", Version)
	tests := []struct {
		name, doc, want string
	}{
		{"bound to another process", string(foreign), "another process"},
		{"another version", "\x01" + string(doc[1:]), older},
		{"version 1, JSON", `{"Version":1,"Binding":{},"Handoff":{}}`, older},
		{"empty", "", "no version"},
		{"cut in the binding", string(doc[:4]), "malformed binding"},
		{"cut in the services", string(doc[:len(doc)-1]), "malformed handoff"},
	}
	for _, tc := range tests {
		if _, err := decodeHandoff([]byte(tc.doc)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}
