package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestScheduleFields(t *testing.T) {
	tests := []struct {
		name  string
		field string // extra fields of svc()
		want  func(*Service)
	}{
		{"a schedule makes a oneshot, on-failure, forbid", `"schedule":"*/5 * * * *"`,
			func(v *Service) {
				v.Schedule, v.Oneshot, v.Restart, v.Concurrency = "*/5 * * * *", true, RestartOnFailure, ConcurrencyForbid
			}},
		{"every field", `"schedule":"@every 90s","timezone":"Europe/Berlin","concurrency":"replace",` +
			`"starting_deadline":"10m","restart":"never","oneshot":true`,
			func(v *Service) {
				v.Schedule, v.Timezone, v.Concurrency = "@every 90s", "Europe/Berlin", ConcurrencyReplace
				v.StartingDeadline, v.Restart, v.Oneshot = 10*time.Minute, RestartNever, true
			}},
		{"critical false is no contradiction", `"schedule":"@daily","critical":false`,
			func(v *Service) {
				v.Schedule, v.Oneshot, v.Restart, v.Concurrency = "@daily", true, RestartOnFailure, ConcurrencyForbid
			}},
		{"starting_deadline 0 is off", `"schedule":"@daily","starting_deadline":"0s"`,
			func(v *Service) {
				v.Schedule, v.Oneshot, v.Restart, v.Concurrency = "@daily", true, RestartOnFailure, ConcurrencyForbid
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			svcs, s := resolveOK(t, svc(tc.field), nil)
			want := shell(s, "web", "x")
			tc.want(&want)
			if len(svcs) != 1 || !reflect.DeepEqual(svcs[0], want) {
				t.Errorf("got  %+v\nwant %+v", svcs, want)
			}
		})
	}
}

func TestInstances(t *testing.T) {
	doc := `[{"name":"db","command":"x"},` +
		`{"name":"web","command":"x","instances":3,"env":{"A":"1","Z":"2"},"depends_on":["db"]},` +
		`{"name":"lb","command":"x","depends_on":["web","db"]},` +
		`{"name":"one","command":"x","instances":1},` +
		`{"name":"probe","command":"x","depends_on":["web-2"]},` +
		`{"name":"tick","command":"x","instances":2,"schedule":"@hourly","depends_on":["one"]}]`
	svcs, s := resolveOK(t, doc, nil)
	copyOf := func(tmpl string, i, n int, env ...string) Service {
		v := shell(s, tmpl+"-"+string(rune('0'+i)), "x")
		v.Template, v.Instance, v.Instances, v.Env = tmpl, i, n, env
		return v
	}
	var want []Service
	want = append(want, shell(s, "db", "x"))
	for i := 1; i <= 3; i++ {
		v := copyOf("web", i, 3, "A=1", "VIGIL_INSTANCE="+string(rune('0'+i)), "VIGIL_INSTANCES=3", "Z=2")
		v.DependsOn = []string{"db"}
		want = append(want, v)
	}
	lb := shell(s, "lb", "x")
	lb.DependsOn = []string{"web-1", "web-2", "web-3", "db"}
	want = append(want, lb, copyOf("one", 1, 1, "VIGIL_INSTANCE=1", "VIGIL_INSTANCES=1"))
	probe := shell(s, "probe", "x")
	probe.DependsOn = []string{"web-2"}
	want = append(want, probe)
	for i := 1; i <= 2; i++ {
		v := copyOf("tick", i, 2, "VIGIL_INSTANCE="+string(rune('0'+i)), "VIGIL_INSTANCES=2")
		v.Schedule, v.Oneshot, v.Restart, v.Concurrency = "@hourly", true, RestartOnFailure, ConcurrencyForbid
		v.DependsOn = []string{"one-1"}
		want = append(want, v)
	}
	if len(svcs) != len(want) {
		t.Fatalf("%d services, want %d: %+v", len(svcs), len(want), svcs)
	}
	for i := range want {
		if !reflect.DeepEqual(svcs[i], want[i]) {
			t.Errorf("service %d:\n got  %+v\nwant %+v", i, svcs[i], want[i])
		}
	}
}

func TestScheduleAndInstanceProblems(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []string
	}{
		{"a bad expression: the parser's message, at the value",
			svc(`"schedule":"61 * * * *"`),
			[]string{`f.json:1:41: service "web": field "schedule": "61 * * * *": end of range (61) above maximum (59): 61`}},
		{"a bad expression and what goes with a schedule: one message",
			svc(`"schedule":"bad","timezone":"UTC","critical":true`),
			[]string{`f.json:1:41: service "web": field "schedule": "bad": expected exactly 5 fields, found 1: [bad]`}},
		{"a schedule of the wrong type",
			svc(`"schedule":5`),
			[]string{`f.json:1:41: service "web": field "schedule": want a string, got a number`}},
		{"the zone goes in its own field",
			svc(`"schedule":"CRON_TZ=UTC 0 * * * *"`),
			[]string{`f.json:1:41: service "web": field "schedule": "CRON_TZ=UTC 0 * * * *": give the zone in the timezone field, not in the expression`}},
		{"@every below a second",
			svc(`"schedule":"@every 100ms"`),
			[]string{`f.json:1:41: service "web": field "schedule": "@every 100ms": the shortest interval is 1s`}},
		{"an unknown zone",
			svc(`"schedule":"@daily","timezone":"Mars/Base"`),
			[]string{`f.json:1:61: service "web": field "timezone": unknown time zone "Mars/Base"`}},
		{"an empty zone",
			svc(`"schedule":"@daily","timezone":""`),
			[]string{`f.json:1:61: service "web": field "timezone": empty string`}},
		{"critical is refused with a schedule, at its key",
			svc(`"schedule":"@daily","critical":true`),
			[]string{`f.json:1:50: service "web": field "critical": a scheduled service never ends the container: critical cannot go with schedule`}},
		{"oneshot false contradicts a schedule",
			svc(`"schedule":"@daily","oneshot":false`),
			[]string{`f.json:1:50: service "web": field "oneshot": a scheduled service is a oneshot (each tick starts one run): remove oneshot: false`}},
		{"restart always contradicts a schedule",
			svc(`"schedule":"@daily","restart":"always"`),
			[]string{`f.json:1:50: service "web": field "restart": "always" would rerun a scheduled service as soon as it ends: use "on-failure" (the default) or "never"`}},
		{"schedule fields without a schedule",
			svc(`"timezone":"UTC","concurrency":"allow","starting_deadline":"1m"`),
			[]string{`f.json:1:30: service "web": field "timezone": applies to a scheduled service only: add a schedule`,
				`f.json:1:47: service "web": field "concurrency": applies to a scheduled service only: add a schedule`,
				`f.json:1:69: service "web": field "starting_deadline": applies to a scheduled service only: add a schedule`}},
		{"concurrency allow is not supported yet",
			svc(`"schedule":"@daily","concurrency":"allow"`),
			[]string{`f.json:1:50: service "web": field "concurrency": "allow" is not supported yet (a service tracks one run at a time): use "forbid" (the default) or "replace", or instances for runs side by side`}},
		{"an unknown concurrency",
			svc(`"schedule":"@daily","concurrency":"queue"`),
			[]string{`f.json:1:64: service "web": field "concurrency": "queue" is not one of forbid, allow, replace`}},
		{"a negative starting_deadline",
			svc(`"schedule":"@daily","starting_deadline":"-1m"`),
			[]string{`f.json:1:70: service "web": field "starting_deadline": negative duration "-1m"`}},
		{"instances 0", svc(`"instances":0`),
			[]string{`f.json:1:42: service "web": field "instances": 0: want 1..1000`}},
		{"instances -1", svc(`"instances":-1`),
			[]string{`f.json:1:42: service "web": field "instances": -1: want 1..1000`}},
		{"instances above the bound", svc(`"instances":1001`),
			[]string{`f.json:1:42: service "web": field "instances": 1001: want 1..1000`}},
		{"instances as a string", svc(`"instances":"2"`),
			[]string{`f.json:1:42: service "web": field "instances": want a whole number, got a string`}},
		{"a template cannot set the instance variables",
			svc(`"instances":2,"env":{"VIGIL_INSTANCE":"x","VIGIL_INSTANCES":"y"}`),
			[]string{`f.json:1:51: service "web": field "env.VIGIL_INSTANCE": vigil sets VIGIL_INSTANCE in each copy of a service with instances`,
				`f.json:1:72: service "web": field "env.VIGIL_INSTANCES": vigil sets VIGIL_INSTANCES in each copy of a service with instances`}},
		{"a copy's name taken by another service",
			`[{"name":"web","command":"x","instances":3},` + "\n" + `{"name":"web-2","command":"x"}]`,
			[]string{`f.json:1:30: service "web": field "instances": copy 2 of 3 would be named "web-2", and service "web-2" (at 2:2) has that name`}},
		{"a template's name is taken like any other",
			`[{"name":"web","command":"x"},{"name":"web","command":"x","instances":2}]`,
			[]string{`f.json:1:32: service "web": field "name": duplicate name (first at 1:3)`}},
		{"a template depending on one of its copies",
			`[{"name":"web","command":"x","instances":3,"depends_on":["web-2"]}]`,
			[]string{`f.json:1:58: service "web": field "depends_on[0]": "web-2" is a copy of this service: a copy cannot depend on itself`}},
		{"a template depending on itself",
			`[{"name":"web","command":"x","instances":2,"depends_on":["web"]}]`,
			[]string{`f.json:1:58: service "web": field "depends_on[0]": a service cannot depend on itself`}},
		{"a cycle through one copy",
			`[{"name":"a","command":"x","instances":2,"depends_on":["b"]},{"name":"b","command":"x","depends_on":["a-2"]}]`,
			[]string{`f.json:1:56: service "a": field "depends_on[0]": dependency cycle: a-2 -> b -> a-2`}},
		{"a cycle through the template: one report",
			`[{"name":"a","command":"x","instances":2,"depends_on":["b"]},{"name":"b","command":"x","depends_on":["a"]}]`,
			[]string{`f.json:1:56: service "a": field "depends_on[0]": dependency cycle: a-1 -> b -> a-1`}},
		{"unknown and reserved dependencies of a template",
			`[{"name":"a","command":"x","instances":2,"depends_on":["nope","main"]}]`,
			[]string{`f.json:1:56: service "a": field "depends_on[0]": unknown service "nope"`,
				`f.json:1:63: service "a": field "depends_on[1]": "main" is the main process, not a service: nothing can depend on it`}},
		{"a copy name is no template name",
			`[{"name":"a","command":"x","instances":2},{"name":"b","command":"x","depends_on":["a-3"]}]`,
			[]string{`f.json:1:83: service "b": field "depends_on[0]": unknown service "a-3"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := check(tc.doc); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestCheckZoneWithoutDatabase(t *testing.T) {
	none := func(string) (*time.Location, error) { return nil, errors.New("unknown time zone") }
	err := checkZone("Europe/Berlin", none)
	if err == nil || !strings.Contains(err.Error(), "no time zone database") {
		t.Errorf("no database: %v", err)
	}
	only := func(name string) (*time.Location, error) {
		if name == "Etc/UTC" {
			return time.UTC, nil
		}
		return nil, errors.New("unknown time zone")
	}
	if err := checkZone("Europe/Berlni", only); err == nil || strings.Contains(err.Error(), "database") {
		t.Errorf("a typo: %v", err)
	}
	if err := checkZone("Etc/UTC", only); err != nil {
		t.Errorf("a known zone: %v", err)
	}
}
