# The vigil image: nothing but the static binary, FROM scratch.
#
#   make build && make image          -> vigil:dev
#
# It is built from bin/vigil as `make build` produced it (a static,
# CGO_ENABLED=0 binary), so no toolchain image is pulled. With registry
# access, examples/Dockerfile.multistage builds the same image from source.
# `make release` builds this same image for every architecture without a
# container engine (dist/vigil-linux-ARCH.oci.tar, for `docker load`), so
# keep to FROM scratch, COPY, ENTRYPOINT, CMD, ENV, LABEL, WORKDIR and USER.
#
# Use it to add vigil to your own image:
#
#   COPY --from=vigil:dev /vigil /vigil
#   ENTRYPOINT ["/vigil", "--"]          # wrapper mode, as tini
#   CMD ["my-server", "--flag"]
#
# or, for services from /etc/vigil/vigil.json, ENTRYPOINT ["/vigil"]
# (examples/multi). Examples of both, and Kubernetes manifests, are in
# examples/.
FROM scratch
COPY bin/vigil /vigil
ENTRYPOINT ["/vigil"]
