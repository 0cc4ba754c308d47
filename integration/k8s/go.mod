// vigil's Kubernetes tests (make test-k8s): a module of their own, so that
// nothing they need ever reaches the go.mod of the binary.
// The kubelet is built from tools/kubelet, another module.
module github.com/vigil-init/vigil/integration/k8s

go 1.26.0
