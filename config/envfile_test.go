package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestDecodeEnvFilesSecretsLogFile(t *testing.T) {
	tests := []struct {
		name  string
		doc   string
		check func(t *testing.T, svc Service)
	}{
		{"env_file as one path, relative to the config file's directory",
			svc(`"env_file":"app.env"`),
			func(t *testing.T, svc Service) {
				want := []EnvFile{{Path: "/etc/vigil/app.env"}}
				if !reflect.DeepEqual(svc.EnvFiles, want) {
					t.Errorf("got %+v, want %+v", svc.EnvFiles, want)
				}
			}},
		{"env_file as a list; '?' makes one optional; absolute paths stay",
			svc(`"env_file":["/run/a.env","b.env?"]`),
			func(t *testing.T, svc Service) {
				want := []EnvFile{{Path: "/run/a.env"}, {Path: "/etc/vigil/b.env", Optional: true}}
				if !reflect.DeepEqual(svc.EnvFiles, want) {
					t.Errorf("got %+v, want %+v", svc.EnvFiles, want)
				}
			}},
		{"top-level env_file comes first, marked top-level",
			`{"env_file":"/common.env","services":[{"name":"web","command":"x","env_file":"/web.env"}]}`,
			func(t *testing.T, svc Service) {
				want := []EnvFile{{Path: "/common.env", TopLevel: true}, {Path: "/web.env"}}
				if !reflect.DeepEqual(svc.EnvFiles, want) {
					t.Errorf("got %+v, want %+v", svc.EnvFiles, want)
				}
			}},
		{"secrets sorted by variable",
			svc(`"secrets":{"Z":"/run/secrets/z","DB_PASSWORD":"/run/secrets/db"}`),
			func(t *testing.T, svc Service) {
				want := []Secret{{"DB_PASSWORD", "/run/secrets/db"}, {"Z", "/run/secrets/z"}}
				if !reflect.DeepEqual(svc.Secrets, want) {
					t.Errorf("got %+v, want %+v", svc.Secrets, want)
				}
			}},
		{"log_file as a path takes the defaults",
			svc(`"log_file":"/var/log/web.log"`),
			func(t *testing.T, svc Service) {
				want := &LogFile{Path: "/var/log/web.log", MaxSize: 10 << 20, MaxFiles: 5}
				if !reflect.DeepEqual(svc.LogFile, want) {
					t.Errorf("got %+v, want %+v", svc.LogFile, want)
				}
			}},
		{"log_file as an object",
			svc(`"log_file":{"path":"/var/log/web.log","max_size":"512KiB","max_files":0}`),
			func(t *testing.T, svc Service) {
				want := &LogFile{Path: "/var/log/web.log", MaxSize: 512 << 10, MaxFiles: 0}
				if !reflect.DeepEqual(svc.LogFile, want) {
					t.Errorf("got %+v, want %+v", svc.LogFile, want)
				}
			}},
		{"no log_file, no env files, no secrets",
			svc(`"log":"prefix"`),
			func(t *testing.T, svc Service) {
				if svc.LogFile != nil || svc.EnvFiles != nil || svc.Secrets != nil {
					t.Errorf("got %+v", svc)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := Default()
			raw, probs := Decode([]byte(tc.doc), "/etc/vigil/vigil.json", &s)
			svcs, more := Resolve(raw, s)
			for _, p := range append(probs, more...) {
				t.Errorf("unexpected problem: %s", p)
			}
			if len(svcs) != 1 {
				t.Fatalf("got %d services", len(svcs))
			}
			tc.check(t, svcs[0])
		})
	}
}

func TestDecodeEnvFilesSecretsLogFileProblems(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []string
	}{
		{"env_file of the wrong type", svc(`"env_file":5`),
			[]string{`f.json:1:41: service "web": field "env_file": want a path or an array of paths, got a number`}},
		{"an empty env_file", svc(`"env_file":["a.env",""]`),
			[]string{`f.json:1:50: service "web": field "env_file[1]": empty string`}},
		{"an env_file of '?' alone", svc(`"env_file":"?"`),
			[]string{`f.json:1:41: service "web": field "env_file": "?" alone: want a path, with "?" at its end if it may be missing`}},
		{"secrets of the wrong type", svc(`"secrets":["/x"]`),
			[]string{`f.json:1:40: service "web": field "secrets": want an object such as {"DB_PASSWORD": "/run/secrets/db"}, got an array`}},
		{"a secret with a bad name or path", svc(`"secrets":{"A=B":"/x","C":5}`),
			[]string{`f.json:1:41: service "web": field "secrets.A=B": a variable name cannot contain '=' or a NUL byte`,
				`f.json:1:56: service "web": field "secrets.C": want a string, got a number`}},
		{"a variable in both env and secrets", svc(`"env":{"DB":"x"},"secrets":{"DB":"/run/secrets/db"}`),
			[]string{`f.json:1:58: service "web": field "secrets.DB": also set in env (at 1:37): give it in one place`}},
		{"log_file without a path", svc(`"log_file":{"max_files":2}`),
			[]string{`f.json:1:41: service "web": field "log_file": missing: a log_file needs a path`}},
		{"log_file with bad sizes and counts", svc(`"log_file":{"path":"/l","max_size":"10 parsecs","max_files":-1,"maxsize":1}`),
			[]string{`f.json:1:65: service "web": field "log_file.max_size": bad size "10 parsecs" (write e.g. "10MiB", "512KiB", "1GB")`,
				`f.json:1:90: service "web": field "log_file.max_files": -1: want 0 (no rotated files kept) to 1000`,
				`f.json:1:93: service "web": field "log_file.maxsize": unknown field (did you mean "max_size"?)`}},
		{"a log_file max_size too small to be useful", svc(`"log_file":{"path":"/l","max_size":100}`),
			[]string{`f.json:1:65: service "web": field "log_file.max_size": 100: want 4KiB or more`}},
		{"a misspelt service field suggests env_file", svc(`"env_files":"a"`),
			[]string{`f.json:1:30: service "web": field "env_files": unknown field (did you mean "env_file"?)`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := check(tc.doc); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("doc %s\ngot  %q\nwant %q", tc.doc, got, tc.want)
			}
		})
	}
	t.Run("VIGIL_SERVICES holds no top-level env_file", func(t *testing.T) {
		var s Settings
		_, probs := Decode([]byte(`{"env_file":"/a","services":[]}`), ServicesVar, &s)
		if len(probs) != 1 || !strings.Contains(probs[0].Msg, "give env_file in each service") || s.EnvFiles != nil {
			t.Errorf("got %v, settings %+v", probs, s.EnvFiles)
		}
	})
	t.Run("env_file is a file-only setting: the environment layer keeps it", func(t *testing.T) {
		s := Default()
		Decode([]byte(`{"env_file":"/a.env"}`), "f.json", &s)
		if errs := s.Env([]string{"VIGIL_MAX_RETRIES=2"}); len(errs) != 0 {
			t.Fatal(errs)
		}
		if want := []EnvFile{{Path: "/a.env", TopLevel: true}}; !reflect.DeepEqual(s.EnvFiles, want) || s.MaxRetries != 2 {
			t.Errorf("got %+v %d", s.EnvFiles, s.MaxRetries)
		}
	})
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"4096", 4096, true}, {"10MiB", 10 << 20, true}, {"10 MiB", 10 << 20, true}, {"512k", 512 << 10, true},
		{"1GB", 1e9, true}, {"2gib", 2 << 30, true}, {"7B", 7, true}, {"1KB", 1000, true},
		{"", 0, false}, {"MiB", 0, false}, {"1.5MiB", 0, false}, {"-1", 0, false}, {"10TiB", 0, false},
		{"99999999999999999999", 0, false}, {"9999999999999GiB", 0, false},
	}
	for _, tc := range tests {
		got, err := ParseSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// writeFiles creates name -> content under dir and returns dir.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func envOf(se ServiceEnv) map[string]string {
	m := map[string]string{}
	for _, kv := range se.Env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func sourcesOf(se ServiceEnv) map[string]string {
	m := map[string]string{}
	for _, v := range se.Vars {
		m[v.Name] = v.Source
	}
	return m
}

func TestServiceEnvs(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"common.env": "A=common\nB=common\nC=common\nPATH=/common\n",
		"web.env":    "export B=web\nC=web\nDB_PASSWORD_FILE=/run/secrets/db\n",
		"db":         "s3cret\n",
		"crlf":       "x\r\n",
		"two":        "line1\nline2\n\n",
	})
	doc := `{"env_file":"common.env","services":[
	  {"name":"web","command":"x","env_file":["web.env","missing.env?"],"env":{"C":"env"},
	   "secrets":{"DB_PASSWORD":"db","CRLF":"crlf","TWO":"two"}},
	  {"name":"plain","command":"x"}]}`
	s := Default()
	raw, probs := Decode([]byte(doc), filepath.Join(dir, "vigil.json"), &s)
	svcs, more := Resolve(raw, s)
	if len(probs)+len(more) != 0 {
		t.Fatal(probs, more)
	}
	envs, probs := ServiceEnvs([]string{"PATH=/bin", "HOME=/root", "A=base"}, svcs)
	if len(probs) != 0 {
		t.Fatal(probs)
	}
	web, plain := envs[0], envs[1]
	wantWeb := map[string]string{
		"PATH": "/common", "HOME": "/root", "A": "common", "B": "web", "C": "env",
		"DB_PASSWORD_FILE": "/run/secrets/db", "DB_PASSWORD": "s3cret", "CRLF": "x", "TWO": "line1\nline2\n",
	}
	if got := envOf(web); !reflect.DeepEqual(got, wantWeb) {
		t.Errorf("web env:\ngot  %q\nwant %q", got, wantWeb)
	}
	common, webEnv := "env_file "+filepath.Join(dir, "common.env"), "env_file "+filepath.Join(dir, "web.env")
	wantSrc := map[string]string{
		"PATH": common, "HOME": SourceEnvironment, "A": common, "B": webEnv, "C": SourceEnv,
		"DB_PASSWORD_FILE": webEnv, "DB_PASSWORD": "secret " + filepath.Join(dir, "db"),
		"CRLF": "secret " + filepath.Join(dir, "crlf"), "TWO": "secret " + filepath.Join(dir, "two"),
	}
	if got := sourcesOf(web); !reflect.DeepEqual(got, wantSrc) {
		t.Errorf("web sources:\ngot  %q\nwant %q", got, wantSrc)
	}
	for _, kv := range web.Env {
		if strings.Contains(kv, filepath.Join(dir, "db")) {
			t.Errorf("a secret's path reached the service: %q", kv)
		}
	}
	if !strings.HasPrefix(web.Env[0], "A=") || len(web.Env) != len(web.Vars) {
		t.Errorf("Env is not sorted by name or does not match Vars: %q", web.Env)
	}
	wantPlain := map[string]string{"PATH": "/common", "HOME": "/root", "A": "common", "B": "common", "C": "common"}
	if got := envOf(plain); !reflect.DeepEqual(got, wantPlain) {
		t.Errorf("plain env: got %q, want %q", got, wantPlain)
	}

	t.Run("the fingerprint changes with a file only for the services that use it", func(t *testing.T) {
		again, _ := ServiceEnvs([]string{"PATH=/bin", "HOME=/root", "A=base"}, svcs)
		if again[0].Fingerprint != web.Fingerprint || again[1].Fingerprint != plain.Fingerprint {
			t.Fatal("same files, different fingerprints")
		}
		if err := os.WriteFile(filepath.Join(dir, "web.env"), []byte("B=changed\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "db"), []byte("rotated"), 0o600); err != nil {
			t.Fatal(err)
		}
		after, probs := ServiceEnvs([]string{"PATH=/bin", "HOME=/root", "A=base"}, svcs)
		if len(probs) != 0 {
			t.Fatal(probs)
		}
		if after[0].Fingerprint == web.Fingerprint {
			t.Error("web's files changed and its fingerprint did not")
		}
		if after[1].Fingerprint != plain.Fingerprint {
			t.Error("plain uses none of the changed files and its fingerprint changed")
		}
		if envOf(after[0])["DB_PASSWORD"] != "rotated" {
			t.Error("the secret was not read again")
		}
	})
}

func TestServiceEnvsProblems(t *testing.T) {
	const secret = "hunter2"
	dir := writeFiles(t, map[string]string{
		"bad.env": "OK=1\nA=\"" + secret + "\n",
		"nul":     secret + "\x00",
		"big":     strings.Repeat("x", MaxSecretSize+1),
	})
	if err := os.Mkdir(filepath.Join(dir, "adir"), 0o700); err != nil {
		t.Fatal(err)
	}
	doc := `{"env_file":["gone.env","maybe.env?"],"services":[
	  {"name":"a","command":"x","env_file":["bad.env","also-gone.env"],
	   "secrets":{"MISSING":"nosuch","NUL":"nul","BIG":"big","DIR":"adir"}},
	  {"name":"b","command":"x"}]}`
	s := Default()
	raw, probs := Decode([]byte(doc), filepath.Join(dir, "vigil.json"), &s)
	svcs, more := Resolve(raw, s)
	if len(probs)+len(more) != 0 {
		t.Fatal(probs, more)
	}
	_, probs = ServiceEnvs(nil, svcs)
	var got []string
	for _, p := range probs {
		got = append(got, strings.ReplaceAll(p.String(), dir+"/", ""))
		if strings.Contains(p.String(), secret) {
			t.Errorf("a problem shows a value: %s", p)
		}
	}
	want := []string{
		`field "env_file[0]": env file: open gone.env: no such file or directory (end the path with "?" if the file may be missing)`,
		`service "a": field "env_file[0]": env file: bad.env:2: variable A: the double quote is never closed`,
		`service "a": field "env_file[1]": env file: open also-gone.env: no such file or directory (end the path with "?" if the file may be missing)`,
		`service "a": field "secrets.BIG": secret BIG: big: file too big (65537 bytes, the limit is 65536)`,
		`service "a": field "secrets.DIR": secret DIR: adir: not a regular file (d---------)`,
		`service "a": field "secrets.MISSING": secret MISSING: open nosuch: no such file or directory`,
		`service "a": field "secrets.NUL": secret NUL: nul: contains a NUL byte, which no environment variable can hold`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
