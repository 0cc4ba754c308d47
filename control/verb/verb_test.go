package verb

import "testing"

func TestTable(t *testing.T) {
	seen := map[string]bool{}
	for _, v := range Table {
		if seen[v.Name] {
			t.Errorf("%s listed twice", v.Name)
		}
		seen[v.Name] = true
		if got, ok := Lookup(v.Name); !ok || got.Name != v.Name || !Is(v.Name) {
			t.Errorf("%s: not found by name", v.Name)
		}
		if v.Usage == "" || v.Help == "" {
			t.Errorf("%s: no usage or help line", v.Name)
		}
		if v.Local == (v.Timeout > 0) {
			t.Errorf("%s: a verb over the socket needs a timeout, a local one none (local %v, timeout %s)", v.Name, v.Local, v.Timeout)
		}
	}
	for _, name := range []string{"", "run", "--", "-c", "main"} {
		if Is(name) {
			t.Errorf("%q is taken for a verb", name)
		}
	}
}
