# syntax=docker/dockerfile:1
# Nemutator controller: admission webhook, REST API and fleet hub.
# Build from the repository root:  docker build -f images/controller.Dockerfile -t ghcr.io/nemutator/controller:0.1.0 .

# ---- build: full dependencies, TypeScript -> dist/ ----
FROM node:20-bookworm-slim AS build
# `npm run build` also compiles the agent's SO_PEERCRED addon (node-gyp): build-time only.
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
# `npm run build` regenerates proto/gen and runs tsc -p tsconfig.build.json (outDir dist/).
# tsc emits only what it compiles: the generated protobuf module is plain JavaScript, so it
# is copied next to the compiled proto/codec.js that imports it.
RUN npm run build \
 && mkdir -p dist/proto/gen \
 && cp proto/gen/*.js dist/proto/gen/ \
 && test -f dist/controller/src/main.js

# ---- deps: production dependencies only (classic-level's native addon comes prebuilt) ----
FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# ---- runtime ----
FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
# package.json carries "type": "module", which makes dist/**/*.js ES modules.
COPY package.json ./
COPY --from=deps /app/node_modules/ node_modules/
COPY --from=build /src/dist/ dist/
# Numeric user (the image's "node" user), so that runAsNonRoot can be verified by the
# kubelet. The root filesystem is read-only in the cluster: state goes to
# NEMUTATOR_STATE_DIR (/var/lib/nemutator, an emptyDir) and /tmp.
USER 1000:1000
EXPOSE 8443 8080 8444
ENTRYPOINT ["node", "dist/controller/src/main.js"]
