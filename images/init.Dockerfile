# syntax=docker/dockerfile:1
# nemutator-init: carries the nemu-exec launcher into application pods. The init container
# copies it into the pod's shared in-memory volume, from which the application container
# runs /nemutator/bin/nemu-exec -- <original argv>.
# Build from the repository root:  docker build -f images/init.Dockerfile -t ghcr.io/nemutator/init:0.1.0 .

# ---- build: a static binary, Go standard library only ----
# Built on the builder's own platform and cross-compiled for the target (buildx sets
# TARGETOS/TARGETARCH; a plain docker build leaves them empty, meaning "this machine").
FROM --platform=$BUILDPLATFORM golang:1.22-bookworm AS build
ARG TARGETOS
ARG TARGETARCH
WORKDIR /src
COPY agent/launcher/ ./
# The launcher has no dependencies; a go.mod is created if the sources do not ship one.
RUN test -f go.mod || go mod init nemutator.io/launcher
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -buildvcs=false -ldflags='-s -w' -o /out/nemu-exec .

# ---- runtime: nothing but the launcher ----
# distroless/static: CA certificates, /etc/passwd and tzdata, no shell, no libc.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/nemu-exec /nemu-exec
# The target volume is an emptyDir (mode 0777), so the nonroot user (65532) can write it;
# the copied launcher is mode 0755, executable by whatever user the application runs as.
USER 65532:65532
ENTRYPOINT ["/nemu-exec", "copy", "/nemutator/bin"]
