# Chorus in an image built FROM scratch: a static binary and nothing else,
# so it builds with no base image to pull. Build the binary first:
#   make docker        (runs `make build`, then `docker build`)
FROM scratch
COPY bin/chorus /chorus
# HTTP API, DNS (UDP+TCP), gossip (UDP+TCP)
EXPOSE 8500 8600/udp 8600/tcp 8301/udp 8301/tcp
VOLUME ["/data"]
ENTRYPOINT ["/chorus"]
CMD ["agent", "--data-dir", "/data", "--client", "0.0.0.0", "--bind", "0.0.0.0"]
