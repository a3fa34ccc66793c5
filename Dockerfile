# syntax=docker/dockerfile:1
# The violin image: one binary for every component (`violin operator`,
# `violin ofc`, `violin agent`), compiled TypeScript on Node 24, production
# dependencies only, running as an unprivileged user (the chart's agent
# DaemonSet alone asks for root and privileges, see charts/violin).
# Everything a component runs at run time is in it: the datapath buffer
# tier's Go middlebox (built here, not at first use), ovs-vsctl/ovs-appctl
# and ip.
#
#   docker build -t violin:dev .
#
# Without Docker or a registry, hack/build-image.sh builds the same file with
# buildah, NODE_IMAGE and GO_IMAGE being local images made from Debian
# packages, the `node` npm package and this machine's Go toolchain.

# Any Debian-based image with Node 24 and npm.
ARG NODE_IMAGE=node:24-slim
# Any image with a Go toolchain (>= 1.22) in /usr/local/go.
ARG GO_IMAGE=golang:1.26

FROM ${GO_IMAGE} AS go

# Production dependencies only, without install scripts: nothing of the build
# toolchain (TypeScript, the `node` npm package that pins Node for development)
# reaches the final image.
FROM ${NODE_IMAGE} AS dependencies
WORKDIR /src
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# Everything needed to compile src/ to dist/, and the middlebox.
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json .npmrc ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npx tsc -p tsconfig.json
# The compiled middlebox.js finds its Go sources beside it and its binary in
# $VIOLIN_CACHE/bin under the hash of those sources: build it here, through the
# same code that would build it at first use, so the image never needs Go.
COPY --from=go /usr/local/go /usr/local/go
RUN cp -r src/ofc/buffer/middlebox dist/src/ofc/buffer/middlebox \
 && VIOLIN_CACHE=/src/cache GO=/usr/local/go/bin/go GOCACHE=/tmp/go-cache HOME=/tmp \
    node --input-type=module -e "await (await import('/src/dist/src/ofc/buffer/middlebox.js')).middleboxBinary()" \
 && ls /src/cache/bin/violin-middlebox-*

FROM ${NODE_IMAGE}
LABEL org.opencontainers.image.title="violin" \
      org.opencontainers.image.description="Live, causally consistent snapshots of multi-VM KubeVirt services" \
      org.opencontainers.image.licenses="Apache-2.0"
# ovs-vsctl (the middlebox's tap ports), ovs-appctl (the datapath sync), ip
# (network namespaces of the middlebox). The daemons of openvswitch-switch are
# installed, never started: the node's Open vSwitch is the one used. The agent's
# libvirt backend runs virsh (libvirt-clients: the launchers' monitor) and
# qemu-img and qemu-io (qemu-utils: a saved state made loadable).
RUN apt-get update \
 && apt-get install -y --no-install-recommends openvswitch-switch iproute2 libvirt-clients qemu-utils \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \
    VIOLIN_CACHE=/opt/violin/cache
WORKDIR /opt/violin
COPY --from=dependencies /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/cache/bin ./cache/bin
COPY package.json ./
COPY bin ./bin
# 65532 is the conventional "nonroot" uid; the chart runs the operator as it.
USER 65532:65532
ENTRYPOINT ["node", "/opt/violin/bin/violin.mjs"]
CMD ["help"]
