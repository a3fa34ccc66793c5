# syntax=docker/dockerfile:1
# The violin image: one binary for every component (`violin operator`,
# `violin ofc`, `violin agent`), compiled TypeScript on Node 24, production
# dependencies only, running as an unprivileged user (the chart's agent
# DaemonSet alone asks for root and privileges, see charts/violin).
#
#   docker build -t violin:dev .

ARG NODE_IMAGE=node:24-slim

# Production dependencies only, without install scripts: nothing of the build
# toolchain (TypeScript, the `node` npm package that pins Node for development)
# reaches the final image.
FROM ${NODE_IMAGE} AS dependencies
WORKDIR /src
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# Everything needed to compile src/ to dist/.
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json .npmrc ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npx tsc -p tsconfig.json

FROM ${NODE_IMAGE}
LABEL org.opencontainers.image.title="violin" \
      org.opencontainers.image.description="Live, causally consistent snapshots of multi-VM KubeVirt services" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV NODE_ENV=production
WORKDIR /opt/violin
COPY --from=dependencies /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
COPY bin ./bin
# 65532 is the conventional "nonroot" uid; the chart runs the operator as it.
USER 65532:65532
ENTRYPOINT ["node", "/opt/violin/bin/violin.mjs"]
CMD ["help"]
