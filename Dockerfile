# One image, every role: `docker run sabt start --roles gateway` (or recorder, checker, status,
# simulator, all), `docker run sabt migrate`. See docs/deployment.md.
#
# test/deploy.test.ts reads this file: it runs the build stage's RUN lines in a copy of the
# repository and starts every role from what the runtime stage's COPY lines take, so what is
# tested is what is shipped. Keep RUN lines plain shell (no heredocs). npm run test:deploy builds it
# for real with BuildKit.
#
# No `# syntax=` line: the builder's own frontend has everything used here (RUN --mount), and a
# syntax line makes every BuildKit build pull a frontend image first, which fails without a registry.

ARG NODE_IMAGE=node:24-bookworm-slim

# ---- build: full install, compile, then drop the dev dependencies ---------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
ENV npm_config_update_notifier=false
# The lockfile alone decides the install layer, so a source change does not reinstall.
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build
# Same node_modules minus devDependencies (TypeScript, Biome, Vitest…): nothing is re-downloaded.
RUN npm prune --omit=dev --no-audit --no-fund

# ---- runtime: Node 24 slim, non-root, tini as PID 1 ------------------------------------------
FROM ${NODE_IMAGE} AS runtime
# tini reaps zombies and forwards SIGTERM to node, so `docker stop` triggers Sabt's graceful stop
# (finish in-flight requests, flush the recorder's batch) instead of a SIGKILL after the grace period.
RUN apt-get update \
  && apt-get install -y --no-install-recommends tini \
  && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \
  HOST=0.0.0.0 \
  PORT=8080
WORKDIR /app
# package.json is needed at run time: its "type": "module" makes dist/*.js ES modules.
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# dist/db/migrate.js reads ../../migrations; dist/config/campaigns.js defaults to ../../config/sabt.yaml.
COPY migrations ./migrations
COPY config ./config
# dist/roles/status/dashboard.js serves ../../../public/dashboard (the dashboard's CSS and script;
# htmx and uPlot come from node_modules).
COPY public ./public
# Files stay root-owned and read-only to the process; the app writes nothing to disk in production.
USER node
EXPOSE 8080
# Liveness only (the process answers HTTP). Slim images have no curl: node's fetch does the probe.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["/usr/bin/tini", "--", "node", "/app/dist/cli.js"]
CMD ["start", "--roles", "all"]
