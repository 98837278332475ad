# bpfagent's image: the agent, its native addon and its kernel programs, on Node.js 20.
#
#   docker build -t bpfagent .
#
# The base images are build arguments: any Debian-based image with Node.js 20 (and npm in
# its headers in the build stage) will do, e.g. node:20-bookworm and node:20-bookworm-slim (the defaults),
# or an image of Debian trixie's nodejs and npm packages (what the tests build it on,
# test/helpers/images.ts). The build stage installs the compiler and libbpf from Debian;
# the image that runs holds only what runs: Node.js, libbpf and libelf (the addon links the
# system's), the compiled JavaScript, the production node_modules, the addon and the BPF objects.
# How it runs (capabilities, host PID namespace, host mounts): deploy/kubernetes/daemonset.yaml.
ARG BUILD_IMAGE=node:20-bookworm
ARG RUNTIME_IMAGE=node:20-bookworm-slim

FROM ${BUILD_IMAGE} AS build
# clang-16 on bookworm; CLANG=clang for a release whose default clang is newer (trixie: 19)
ARG CLANG=clang-16
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      "$CLANG" libbpf-dev libelf-dev zlib1g-dev pkg-config bpftool make g++ python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# the dependencies first, in a layer of their own: rebuilt only when package.json or the
# lockfile changes. Their install scripts (better-sqlite3's addon) build against this
# image's Node.js headers, never downloaded (--nodedir); the project's own build scripts
# wait for its sources (set aside here, the real package.json copied back after)
COPY package.json package-lock.json ./
RUN nodedir="$(dirname "$(dirname "$(command -v node)")")" \
 && test -e "$nodedir/include/node/node_api.h" \
 && npm pkg delete scripts.install scripts.prepare \
 && npm ci --nodedir="$nodedir" --no-audit --no-fund
COPY package.json binding.gyp tsconfig.json ./
COPY native native
COPY bpf bpf
COPY scripts/build-bpf.sh scripts/build-bpf.sh
COPY bin bin
COPY src src
# the addon (node-gyp, npm's own) and the BPF objects (scripts/build-bpf.sh), the
# TypeScript; then the development packages go
RUN nodedir="$(dirname "$(dirname "$(command -v node)")")" \
 && CLANG="$(command -v "$CLANG")" npm run install --nodedir="$nodedir" \
 && npm run build \
 && npm prune --omit=dev --no-audit --no-fund

FROM ${RUNTIME_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libbpf1 libelf1 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/bpfagent
COPY --from=build /src/package.json ./
COPY --from=build /src/bin bin
COPY --from=build /src/node_modules node_modules
COPY --from=build /src/dist/src dist/src
COPY --from=build /src/src/ui/static src/ui/static
COPY --from=build /src/build/Release/bpfagent_native.node build/Release/bpfagent_native.node
COPY --from=build /src/build-bpf/*.o build-bpf/
ENTRYPOINT ["node", "/opt/bpfagent/bin/bpfagent.js"]
CMD ["run"]
