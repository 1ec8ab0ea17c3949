# Dockerfile - the image that docs/deploy/kubernetes-sidecar.yaml runs as
# its agent sidecar, registry.example.com/homura:0.1.0:
#
#   docker build -t registry.example.com/homura:0.1.0 .
#   docker run --rm --pid=host --cap-add SYS_PTRACE registry.example.com/homura:0.1.0 dump -p PID
#
# Two stages on Debian 12: the first builds build/homura with the Debian -dev
# packages (the build part of scripts/install-deps.sh) and installs it with
# `make install` into /out; the second is debian:12-slim with only the
# runtime libraries that binary links (objdump -p build/homura | grep NEEDED)
# and what it installed: /usr/local/bin/homura, man pages, completions, docs.
# ENTRYPOINT is homura, so the container's arguments are a homura command.

FROM debian:12-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential pkg-config protobuf-c-compiler \
      libelf-dev libdw-dev zlib1g-dev libprotobuf-c-dev libjansson-dev \
      libcurl4-openssl-dev libmicrohttpd-dev libsqlite3-dev libncurses-dev libpq-dev \
      clang-14 libbpf-dev bpftool \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile README.md ./
COPY proto proto
COPY lib lib
COPY src src
COPY man man
COPY completions completions
COPY docs docs
RUN make -j"$(nproc)" build/homura \
 && make install DESTDIR=/out PREFIX=/usr/local

FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libelf1 libdw1 zlib1g libprotobuf-c1 libjansson4 libcurl4 libmicrohttpd12 \
      libsqlite3-0 libpq5 libncursesw6 libbpf1 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/usr/local/ /usr/local/
# Reading another process's memory needs CAP_SYS_PTRACE (docker run
# --cap-add SYS_PTRACE; the Kubernetes manifest adds it), hence root;
# --ebpf also needs CAP_BPF and CAP_PERFMON (or --privileged).
USER root
ENTRYPOINT ["homura"]
CMD ["--help"]
