package proc

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Credential resolves spec ("name", "uid", "name:group", "uid:gid") against
// the passwd and group files at root (normally "/"), for a child process:
// uid, primary gid, and every supplementary group the user is a member of
// (from the group file's member lists, plus the primary gid). home is the
// user's home directory from passwd ("/" when not found, e.g. for a numeric uid
// that has no passwd entry).
//
// The files are read directly (no cgo, no NSS): a user known only to LDAP or
// systemd-homed is unknown here, as in every static container init. A user
// part of all digits is a uid, looked up by uid (a user named "1000" cannot
// be given by name); it need not have a passwd entry, and then the gid is the
// uid unless given, and there are no supplementary groups. Otherwise the user
// part is a name, which must be in passwd. A group part of all digits is a
// gid, used as is; otherwise it is a group name, which must be in the group
// file. The supplementary groups are those of the passwd entry's name,
// whichever primary group was chosen; Groups is never nil, so the child never
// keeps vigil's own supplementary groups. Numbers range over 0..2^32-2
// ((uid_t)-1 means "unchanged" to the kernel). Blank lines, comments and
// malformed lines in the files are skipped.
func Credential(root, spec string) (cred *syscall.Credential, home string, err error) {
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	if userPart == "" {
		return nil, "", fmt.Errorf("user %q: empty user name", spec)
	}
	if hasGroup && groupPart == "" {
		return nil, "", fmt.Errorf("user %q: empty group after ':'", spec)
	}
	passwdPath := filepath.Join(root, "/etc/passwd")
	groupPath := filepath.Join(root, "/etc/group")

	uid, numeric, err := parseID(userPart)
	if err != nil {
		return nil, "", fmt.Errorf("user %q: %w", spec, err)
	}
	users, err := readDB(passwdPath, 6)
	if err != nil && !(numeric && errors.Is(err, fs.ErrNotExist)) {
		return nil, "", fmt.Errorf("user %q: %w", spec, err)
	}
	var entry []string
	for _, f := range users {
		u, uok := validID(f[2])
		if _, gok := validID(f[3]); !uok || !gok || f[0] == "" {
			continue
		}
		if numeric && u == uid || !numeric && f[0] == userPart {
			entry = f
			break
		}
	}
	home = "/"
	gid := uid
	name := ""
	switch {
	case entry != nil:
		uid, _ = validID(entry[2])
		gid, _ = validID(entry[3])
		name = entry[0]
		if len(entry) > 5 && entry[5] != "" {
			home = entry[5]
		}
	case !numeric:
		return nil, "", fmt.Errorf("user %q: not in %s", userPart, passwdPath)
	}

	var groups [][]string
	if hasGroup || name != "" {
		groups, err = readDB(groupPath, 3)
		// Without a group name to look up, a missing group file only means
		// no supplementary groups.
		if err != nil && (!errors.Is(err, fs.ErrNotExist) || groupNeedsFile(groupPart)) {
			return nil, "", fmt.Errorf("user %q: %w", spec, err)
		}
	}
	if hasGroup {
		g, gnum, err := parseID(groupPart)
		if err != nil {
			return nil, "", fmt.Errorf("user %q: group: %w", spec, err)
		}
		if !gnum {
			found := false
			for _, f := range groups {
				if id, ok := validID(f[2]); ok && f[0] == groupPart {
					g, found = id, true
					break
				}
			}
			if !found {
				return nil, "", fmt.Errorf("user %q: group %q: not in %s", spec, groupPart, groupPath)
			}
		}
		gid = g
	}

	cred = &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}, NoSetGroups: false}
	if name != "" {
		cred.Groups = append(cred.Groups, gid)
		for _, f := range groups {
			id, ok := validID(f[2])
			if !ok || len(f) < 4 || !isMember(f[3], name) {
				continue
			}
			if !containsID(cred.Groups, id) {
				cred.Groups = append(cred.Groups, id)
			}
		}
	}
	return cred, home, nil
}

// groupNeedsFile reports whether a group part must be looked up by name.
func groupNeedsFile(group string) bool {
	return group != "" && !allDigits(group)
}

// parseID reads s as a numeric id if it is all digits (numeric true, an error
// if out of range), else reports it is a name.
func parseID(s string) (id uint32, numeric bool, err error) {
	if !allDigits(s) {
		return 0, false, nil
	}
	id, ok := validID(s)
	if !ok {
		return 0, true, fmt.Errorf("id %s out of range 0..%d", s, uint32(math.MaxUint32-1))
	}
	return id, true, nil
}

// validID parses a decimal id in 0..2^32-2.
func validID(s string) (uint32, bool) {
	if !allDigits(s) {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == math.MaxUint32 {
		return 0, false
	}
	return uint32(n), true
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isMember reports whether name is in a group file's comma-separated member
// list.
func isMember(list, name string) bool {
	for m := range strings.SplitSeq(list, ",") {
		if strings.TrimSpace(m) == name {
			return true
		}
	}
	return false
}

func containsID(ids []uint32, id uint32) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// readDB reads a colon-separated file such as /etc/passwd, skipping blank
// lines, comments and lines with fewer than minFields fields. A passwd line
// has 7 fields, a group line 4; one trailing field may be missing.
func readDB(path string, minFields int) ([][]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var recs [][]string
	for line := range bytes.Lines(data) {
		s := strings.TrimRight(string(line), "\r\n")
		if strings.TrimSpace(s) == "" || strings.HasPrefix(strings.TrimSpace(s), "#") {
			continue
		}
		f := strings.Split(s, ":")
		if len(f) < minFields {
			continue
		}
		recs = append(recs, f)
	}
	return recs, nil
}
