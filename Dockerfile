# Build: docker build -t maveraa .
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libpq-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p maveraa-server

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libpq5 ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 maveraa
COPY --from=build /src/target/release/maveraa /usr/local/bin/maveraa
COPY config /etc/maveraa
# In a container the port must be reachable from outside it.
ENV MAVERAA_CONFIG_DIR=/etc/maveraa MAVERAA__SERVER__HOST=0.0.0.0
USER maveraa
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD curl -fs "http://127.0.0.1:${MAVERAA__SERVER__PORT:-8080}/health" || exit 1
ENTRYPOINT ["maveraa"]
CMD ["serve"]
