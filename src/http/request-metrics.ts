import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Metrics } from '../observability/metrics.js'

/** Counts and latency of every answer, by route template. */
export const requestMetrics = fp(
  async (app: FastifyInstance, opts: { metrics: Metrics }) => {
    // Counts and latency of every answer, by route template (never by raw URL: ids would explode it).
    // The labelled children are looked up once per (route, method, status), not hashed per request.
    const children = new Map<string, { count: { inc(): void }; duration: { observe(v: number): void } }>()
    app.addHook('onResponse', (request, reply, done) => {
      const route = request.routeOptions.url ?? 'unmatched'
      const key = `${route}\u0000${request.method}\u0000${reply.statusCode}`
      let child = children.get(key)
      if (!child) {
        const labels = { route, method: request.method, status: String(reply.statusCode) }
        child = {
          count: opts.metrics.httpRequests.labels(labels),
          duration: opts.metrics.httpDuration.labels(labels),
        }
        children.set(key, child)
      }
      child.count.inc()
      child.duration.observe(reply.elapsedTime / 1000)
      done()
    })
  },
  { name: 'sabt-request-metrics' },
)
