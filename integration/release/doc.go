// Package release proves what `make release` builds: every
// binary in dist/ static and of its architecture, SHA256SUMS right, the OCI
// images sound and holding those binaries, a second build in another
// directory byte for byte the same, and the foreign binaries working as PID 1
// under qemu-user-static: a wrapper-mode run (exit status, forwarded
// signals) and a supervisor-mode run (a restart, `vigil status` over the
// control socket, an orphan reaped).
//
// The tests sit behind the build tag "release" and read dist/, so run them
// through
//
//	make test-release    # make release, then go test -tags release ./integration/release/
//
// They call each qemu-ARCH-static directly, so they need no binfmt_misc
// registration (which a container or CI machine often lacks); the programs
// vigil starts are the host's (/bin/sh, sleep).
package release
