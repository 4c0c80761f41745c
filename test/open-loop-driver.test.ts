import { once } from 'node:events'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { afterEach, describe, expect, it } from 'vitest'
import { Http1Pool } from '../bench/lib/http1-pool.js'

/**
 * The benchmarks' open-loop driver counts every 202 and writes every 202'd id for the loss check
 * (decision 011's addendum): its HTTP client must read each answer whole, whatever its framing,
 * and must fail — never hang — when the server closes on it. Against real node:http servers.
 */
const servers: Server[] = []
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections()
    await new Promise((r) => s.close(r))
  }
})

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const s = createServer(handler)
  servers.push(s)
  s.listen(0, '127.0.0.1')
  await once(s, 'listening')
  return `http://127.0.0.1:${(s.address() as { port: number }).port}`
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let b = ''
    req.on('data', (c) => (b += c))
    req.on('end', () => resolve(b))
  })
}

type Answer = { status: number; body: string } | { error: string }

function send(pool: Http1Pool, origin: string, body: string): Promise<Answer> {
  return new Promise((resolve) =>
    pool.request(
      Http1Pool.post('/v1/registrations', new URL(origin).host, 'content-type: application/json\r\n', body),
      {
        onComplete: (status, b) => resolve({ status, body: b?.toString() ?? '' }),
        onError: (err) => resolve({ error: err.message }),
      },
    ),
  )
}

describe('the open-loop driver’s HTTP/1.1 client', () => {
  it('answers every request whole, with more requests than connections, each on its own body', async () => {
    const origin = await serve(async (req, res) => {
      const body = await readBody(req)
      // A multi-byte body: Content-Length must count bytes, both ways.
      const n = (JSON.parse(body) as { n: number }).n
      setTimeout(() => {
        res.writeHead(n % 3 === 0 ? 422 : 202, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ id: `id-${n}`, name: 'محمدرضا' }))
      }, n % 5)
    })
    const pool = new Http1Pool(origin, 4, true)
    try {
      const answers = await Promise.all(
        Array.from({ length: 200 }, (_, n) => send(pool, origin, JSON.stringify({ n, name: 'حسینی‌نژاد' }))),
      )
      answers.forEach((a, n) => {
        expect(a).toEqual({
          status: n % 3 === 0 ? 422 : 202,
          body: JSON.stringify({ id: `id-${n}`, name: 'محمدرضا' }),
        })
      })
    } finally {
      pool.close()
    }
  })

  it('reads a chunked answer whole', async () => {
    const origin = await serve(async (req, res) => {
      await readBody(req)
      res.writeHead(202, { 'content-type': 'application/json' })
      res.write('{"id":')
      setTimeout(() => res.end('"chunked"}'), 5)
    })
    const pool = new Http1Pool(origin, 1, true)
    try {
      expect(await send(pool, origin, '{}')).toEqual({ status: 202, body: '{"id":"chunked"}' })
      expect(await send(pool, origin, '{}')).toEqual({ status: 202, body: '{"id":"chunked"}' })
    } finally {
      pool.close()
    }
  })

  it('after a Connection: close answer, opens a new connection for the next request', async () => {
    const peers = new Set<string>()
    const origin = await serve(async (req, res) => {
      await readBody(req)
      peers.add(`${req.socket.remotePort}`)
      res.writeHead(503, { connection: 'close', 'retry-after': '1' })
      res.end('{}')
    })
    const pool = new Http1Pool(origin, 1, false)
    try {
      for (let i = 0; i < 3; i++) expect(await send(pool, origin, '{}')).toEqual({ status: 503, body: '' })
      expect(peers.size).toBe(3)
    } finally {
      pool.close()
    }
  })

  it('fails the request in flight when the server closes on it, and the ones queued once the server is gone', async () => {
    let taken = 0
    const origin = await serve((req) => {
      taken++
      req.socket.destroy() // no answer: the connection just goes
    })
    const pool = new Http1Pool(origin, 2, false)
    try {
      const first = await Promise.all([
        send(pool, origin, '{}'),
        send(pool, origin, '{}'),
        send(pool, origin, '{}'),
      ])
      expect(first).toEqual([
        { error: 'connection closed' },
        { error: 'connection closed' },
        { error: 'connection closed' },
      ])
      expect(taken).toBe(3)
      // The server stops listening: what waits for a connection is failed when the pool closes.
      const s = servers.pop()!
      s.closeAllConnections()
      await new Promise((r) => s.close(r))
      const late = send(pool, origin, '{}')
      pool.close()
      expect(await late).toEqual({ error: expect.any(String) })
    } finally {
      pool.close()
    }
  })
})
