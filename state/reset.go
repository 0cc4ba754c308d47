package state

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Reset is `vigil reset` with no vigil running: under the directory's lock
// it clears the retry counts and given-up marks of the named services (of
// every service when names is empty) and rewrites the file atomically. Only
// retries and given_up change; status is left as written (given_up is what
// the supervisor acts on). A missing directory or file is nothing to reset:
// nil, whatever the names. A name not in the file is an error wrapping
// ErrUnknown, and then nothing is changed. A running vigil gives an error
// wrapping ErrLocked; a corrupt file an error (it is left for the next start
// of vigil to move aside). A file with nothing to clear is not rewritten.
func Reset(dir string, names []string) error {
	return reset(osFS{}, dir, names)
}

func reset(fsys fsys, dir string, names []string) error {
	lk, err := fsys.Lock(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	defer lk.Close()
	if h, ok := lk.(*held); ok {
		dir = h.base
	}

	path := filepath.Join(dir, FileName)
	data, err := fsys.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	f, err := Decode(data)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}

	if len(names) == 0 {
		for name := range f.Services {
			names = append(names, name)
		}
	}
	var unknown []string
	for _, name := range names {
		if _, ok := f.Services[name]; !ok && !slices.Contains(unknown, name) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		return fmt.Errorf("%w: %s", ErrUnknown, strings.Join(unknown, ", "))
	}

	changed := false
	for _, name := range names {
		svc := f.Services[name]
		if svc.Retries != 0 || svc.GivenUp {
			svc.Retries, svc.GivenUp = 0, false
			f.Services[name] = svc
			changed = true
		}
	}
	if !changed {
		return nil
	}
	f.Updated = time.Now()
	data = Encode(f)
	err = writeAtomic(fsys, dir, data)
	if errors.Is(err, errBindMounted) {
		err = writeInPlace(fsys, dir, data)
	}
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	return nil
}
