# syntax=docker/dockerfile:1
# fedclaims in two stages: a Go build stage that links OpenBLAS through cgo, and a
# slim runtime with only the shared library the binary needs. One image serves every
# role (setup, aggregator, site, admin); the command picks the role.

FROM golang:1.26 AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libopenblas-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# What `fedclaims version` reports: .git is not in the build context, so the
# version and commit come in as build arguments (docker-compose.yml passes them).
ARG VERSION=dev
ARG COMMIT=
RUN CGO_ENABLED=1 go build -tags openblas -trimpath -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" -o /out/fedclaims ./cmd/fedclaims

FROM debian:trixie-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libopenblas0 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/fedclaims --create-home fedclaims
COPY --from=build /out/fedclaims /usr/local/bin/fedclaims
# Named volumes mounted below /var/lib/fedclaims start out owned by this user.
USER fedclaims
WORKDIR /var/lib/fedclaims
ENTRYPOINT ["/usr/local/bin/fedclaims"]
CMD ["--help"]
