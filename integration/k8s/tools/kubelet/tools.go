//go:build tools

// Package kubelet only pins the kubelet's command in this module's go.mod and
// go.sum; build.sh builds it with `go build k8s.io/kubernetes/cmd/kubelet`.
package kubelet

import _ "k8s.io/kubernetes/cmd/kubelet"
