# syntax=docker/dockerfile:1
# Nemutator agent: node metrics, secrets socket, CSI node plugin and bpftrace profiler (DaemonSet).
# Build from the repository root:  docker build -f images/agent.Dockerfile -t ghcr.io/nemutator/agent:0.1.0 .

# ---- build: full dependencies, TypeScript -> dist/ ----
FROM node:20-bookworm-slim AS build
# The SO_PEERCRED addon (agent/native/peercred) is compiled by node-gyp against the image's
# own Node headers (/usr/local/include/node): it needs python3, make and a C compiler.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY build/ build/
COPY proto/ proto/
COPY common/ common/
COPY controller/ controller/
COPY agent/ agent/
# See controller.Dockerfile: the generated protobuf module is copied next to its importer.
RUN npm run build \
 && mkdir -p dist/proto/gen \
 && cp proto/gen/*.js dist/proto/gen/ \
 && test -f dist/agent/src/main.js \
 && test -f dist/agent/src/csi/proto/csi.proto

# ---- deps: production dependencies only ----
FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# ---- the Node.js runtime, taken from the official image ----
FROM node:20-bookworm-slim AS node

# ---- runtime: Debian with bpftrace, plus Node.js ----
FROM debian:bookworm-slim
# bpftrace: the profiler's sampler. ca-certificates: TLS to Vault. mount: mount(8) and
# umount(8), with which the CSI plugin bind-mounts the socket directory into pods (in the
# slim image already, named so that it stays). libstdc++6 and libgcc-s1: the node binary
# links them dynamically (already pulled in by bpftrace; named so that removing bpftrace does
# not break node).
RUN apt-get update \
 && apt-get install -y --no-install-recommends bpftrace ca-certificates mount libstdc++6 libgcc-s1 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=node /usr/local/bin/node /usr/local/bin/node
ENV NODE_ENV=production
WORKDIR /app
COPY package.json ./
COPY --from=deps /app/node_modules/ node_modules/
COPY --from=build /src/dist/ dist/
# Runs as root (uid 0) on purpose: bpftrace refuses to start with any other effective uid.
# The DaemonSet runs it privileged, for the CSI plugin's mount propagation, with a read-only
# root filesystem (docs/security.md, "The agent's privileges").
USER 0:0
EXPOSE 9101
# V8 tuned for a small resident set rather than peak JavaScript speed (bench/agent measures
# both): --no-opt leaves TurboFan out (its code pages and compile memory are ~8 MiB of RSS; the
# agent mostly waits on syscalls, so its CPU stays well under 1 % of a core) and
# --optimize-for-size lets the heap grow in small steps. NODE_OPTIONS cannot carry these two.
ENTRYPOINT ["node", "--no-opt", "--optimize-for-size", "dist/agent/src/main.js"]
