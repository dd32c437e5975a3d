# The tagwatch service image, built from the one artifact: the tarball `npm pack` makes (its
# `files` list is what ships, npm-shrinkwrap.json pins what it installs), installed with
# --omit=dev exactly as test/integration/package.test.ts installs and runs it.
# Runs as `tagwatch all` or as one part (api, ingest, worker, migrate).

# 1. the artifact (compiled by the prepack script: tsc -p tsconfig.build.json)
FROM node:24-bookworm-slim AS artifact
WORKDIR /src
COPY . .
RUN npm install --no-audit --no-fund && npm pack --pack-destination /artifact

# 2. the runtime: the artifact's production dependencies and compiled JavaScript only
FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /opt/tagwatch
COPY --from=artifact /artifact/ /tmp/artifact/
RUN echo '{ "private": true }' > package.json \
 && npm install --omit=dev --no-audit --no-fund /tmp/artifact/tagwatch-*.tgz \
 && rm -rf /tmp/artifact && npm cache clean --force
# the parts listen on all interfaces inside the container (docker-compose.yml publishes the
# port on 127.0.0.1 unless told otherwise)
ENV HOST=0.0.0.0 PORT=8080
USER node
EXPOSE 8080
# readiness of the HTTP part (api, all); docker-compose.yml turns it off for ingest and worker,
# which serve no HTTP
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["/opt/tagwatch/node_modules/.bin/tagwatch"]
CMD ["all"]
