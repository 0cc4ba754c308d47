// Package k8s holds vigil's tests on a real Kubernetes node: a standalone
// kubelet (static pods, no API server) on Debian's containerd, with images
// built FROM scratch by buildah (run.sh says how each is set up).
//
//	make test-k8s    # integration/k8s/run.sh, as root
//
// run.sh installs and starts everything, runs the tests (build tag k8s, with
// VIGIL_K8S_WORK naming its work dir) and tears it all down again. The tests
// write static pod manifests and check each outcome from outside the pod:
// containerd's events (`ctr events`: exits, exec probes), the kubelet's
// read-only /pods, the files the services write to a hostPath, the pods' log
// files and the host's /proc.
package k8s
