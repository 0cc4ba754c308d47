// Package docker holds vigil's Docker integration tests: vigil as PID 1 of
// real containers, built FROM scratch from the static binary and a static
// busybox. They need a running Docker engine, so they sit
// behind the build tag "docker", which `go test ./...` leaves out:
//
//	make test-docker    # go test -tags docker -count=1 -v ./integration/docker/
//
// Each test builds the images it needs with `docker build` from a temporary
// context and removes its containers, images and volumes again; everything
// it creates carries the label vigil-docker-test=<run id>.
package docker
