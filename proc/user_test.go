package proc

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const testPasswd = `# comment line
root:x:0:0:root:/root:/bin/sh

www:x:33:33:www-data:/var/www:/usr/sbin/nologin
alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash
nohome:x:1001:1001:::/bin/sh
   # indented comment
broken line without colons
short:x:1002
baduid:x:abc:1000:x:/x:/bin/sh
neg:x:-5:1000:x:/x:/bin/sh
huge:x:4294967295:1000:x:/x:/bin/sh
noshell:x:1003:1003::/home/noshell
crlf:x:1004:1004::/home/crlf:/bin/sh` + "\r" + `
+nisuser::::::
bob:x:2000:100:Bob:/home/bob:/bin/sh
alice:x:9999:9999:duplicate, first wins:/nowhere:/bin/sh
`

const testGroup = `# groups
root:x:0:
www:x:33:
users:x:100:alice, bob
alice:x:1000:
staff:x:50:alice
audio:x:29:bob,alice,carol
bad:x:notanumber:alice
toobig:x:4294967295:alice
malformed
wheel:x:10:root,alice
nomembers:x:60

video:x:44:carol
dup:x:100:alice
`

func fakeRoot(t *testing.T, passwd, group string) string {
	t.Helper()
	root := t.TempDir()
	os.Mkdir(filepath.Join(root, "etc"), 0o755)
	if passwd != "" {
		if err := os.WriteFile(filepath.Join(root, "etc/passwd"), []byte(passwd), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if group != "" {
		if err := os.WriteFile(filepath.Join(root, "etc/group"), []byte(group), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestCredential(t *testing.T) {
	root := fakeRoot(t, testPasswd, testGroup)
	tests := []struct {
		name, spec string
		uid, gid   uint32
		groups     []uint32
		home       string
		err        string // substring of the error; "" for none
	}{
		{name: "name", spec: "alice", uid: 1000, gid: 1000, groups: []uint32{1000, 100, 50, 29, 10}, home: "/home/alice"},
		{name: "root", spec: "root", uid: 0, gid: 0, groups: []uint32{0, 10}, home: "/root"},
		{name: "uid with entry", spec: "1000", uid: 1000, gid: 1000, groups: []uint32{1000, 100, 50, 29, 10}, home: "/home/alice"},
		{name: "name:group", spec: "alice:staff", uid: 1000, gid: 50, groups: []uint32{50, 100, 29, 10}, home: "/home/alice"},
		{name: "name:gid", spec: "www:1234", uid: 33, gid: 1234, groups: []uint32{1234}, home: "/var/www"},
		{name: "uid:gid with entry", spec: "2000:29", uid: 2000, gid: 29, groups: []uint32{29, 100}, home: "/home/bob"},
		{name: "uid:gid without entry", spec: "4242:4343", uid: 4242, gid: 4343, groups: []uint32{}, home: "/"},
		{name: "uid:group without entry", spec: "4242:audio", uid: 4242, gid: 29, groups: []uint32{}, home: "/"},
		{name: "numeric without entry", spec: "5000", uid: 5000, gid: 5000, groups: []uint32{}, home: "/"},
		{name: "primary group only", spec: "www", uid: 33, gid: 33, groups: []uint32{33}, home: "/var/www"},
		{name: "member of a group by spaced list", spec: "bob", uid: 2000, gid: 100, groups: []uint32{100, 29}, home: "/home/bob"},
		{name: "missing shell field", spec: "noshell", uid: 1003, gid: 1003, groups: []uint32{1003}, home: "/home/noshell"},
		{name: "empty home field", spec: "nohome", uid: 1001, gid: 1001, groups: []uint32{1001}, home: "/"},
		{name: "CRLF line", spec: "crlf", uid: 1004, gid: 1004, groups: []uint32{1004}, home: "/home/crlf"},
		{name: "largest id", spec: "4294967294:4294967294", uid: 4294967294, gid: 4294967294, groups: []uint32{}, home: "/"},

		{name: "unknown user", spec: "nobody", err: `user "nobody": not in ` + root + "/etc/passwd"},
		{name: "unknown user with group", spec: "nobody:staff", err: `user "nobody": not in`},
		{name: "unknown group", spec: "alice:nogroup", err: `user "alice:nogroup": group "nogroup": not in ` + root + "/etc/group"},
		{name: "malformed line is not a user", spec: "short", err: "not in"},
		{name: "bad uid line is not a user", spec: "baduid", err: "not in"},
		{name: "out of range uid line is not a user", spec: "huge", err: "not in"},
		{name: "comment is not a user", spec: "#", err: "not in"},
		{name: "bad gid group is not a group", spec: "alice:bad", err: "not in"},
		{name: "uid -1", spec: "4294967295", err: "out of range"},
		{name: "uid too big", spec: "99999999999", err: "out of range"},
		{name: "gid -1", spec: "alice:4294967295", err: "out of range"},
		{name: "negative uid is a name", spec: "-5", err: "not in"},
		{name: "empty", spec: "", err: "empty user"},
		{name: "empty user", spec: ":50", err: "empty user"},
		{name: "empty group", spec: "alice:", err: "empty group"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cred, home, err := Credential(root, tt.spec)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Credential(%q) error %v, want one containing %q", tt.spec, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Credential(%q): %v", tt.spec, err)
			}
			if cred.Uid != tt.uid || cred.Gid != tt.gid {
				t.Errorf("uid:gid %d:%d, want %d:%d", cred.Uid, cred.Gid, tt.uid, tt.gid)
			}
			if cred.Groups == nil || !reflect.DeepEqual(cred.Groups, tt.groups) {
				t.Errorf("groups %#v, want %#v", cred.Groups, tt.groups)
			}
			if cred.NoSetGroups {
				t.Error("NoSetGroups is set")
			}
			if home != tt.home {
				t.Errorf("home %q, want %q", home, tt.home)
			}
		})
	}
}

func TestCredentialDefaultRootMessage(t *testing.T) {
	_, _, err := Credential("/", "no-such-user-vigil-test")
	if err == nil || err.Error() != `user "no-such-user-vigil-test": not in /etc/passwd` {
		t.Errorf("error %v", err)
	}
}

func TestCredentialMissingFiles(t *testing.T) {
	tests := []struct {
		name, passwd, group, spec string
		uid, gid                  uint32
		groups                    []uint32
		err                       string
	}{
		{name: "name without passwd", group: testGroup, spec: "alice", err: "no such file"},
		{name: "uid without passwd", group: testGroup, spec: "1000", uid: 1000, gid: 1000, groups: []uint32{}},
		{name: "uid:gid without either", spec: "7:8", uid: 7, gid: 8, groups: []uint32{}},
		{name: "uid:group without group file", spec: "7:staff", err: "no such file"},
		{name: "name without group file", passwd: testPasswd, spec: "alice", uid: 1000, gid: 1000, groups: []uint32{1000}},
		{name: "name:group without group file", passwd: testPasswd, spec: "alice:staff", err: "no such file"},
		{name: "name:gid without group file", passwd: testPasswd, spec: "alice:50", uid: 1000, gid: 50, groups: []uint32{50}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cred, _, err := Credential(fakeRoot(t, tt.passwd, tt.group), tt.spec)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cred.Uid != tt.uid || cred.Gid != tt.gid || !reflect.DeepEqual(cred.Groups, tt.groups) {
				t.Errorf("got %d:%d %v, want %d:%d %v", cred.Uid, cred.Gid, cred.Groups, tt.uid, tt.gid, tt.groups)
			}
		})
	}
}
