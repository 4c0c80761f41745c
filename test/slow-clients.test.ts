import { connect, type Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { registration, startTestSabt, type TestSabt, testEnv, waitFor } from './support/harness.js'
import { type RawExchange, rawExchange } from './support/raw-http.js'

// Slow and oversized clients, over a real socket (app.inject() has no socket to be slow on).
// Timeouts are small here so the test is quick; production defaults are in docs/decisions/010-slow-clients.md.
const REQUEST_TIMEOUT_MS = 1500
const HEADERS_TIMEOUT_MS = 400
const CHECK_EVERY_MS = 100 // httpLimits(): a quarter of the headers timeout
const SLACK_MS = 400 // scheduling on a loaded 2-core machine

const HEAD = 'POST /v1/registrations HTTP/1.1\r\nHost: sabt.test\r\nContent-Type: application/json\r\n'

function errorBody(x: RawExchange): {
  statusCode: number
  code: string
  errors?: { field: string; rule: string }[]
} {
  return JSON.parse(x.body)
}

/**
 * The server closed the socket right after answering, although the client went on sending:
 * a half-close would have let a hostile client keep the socket (and its slot) forever.
 */
function expectLetGo(x: RawExchange) {
  expect(x.gaveUp).toBe(false)
  expect(x.closedMs - x.answeredMs!).toBeLessThan(SLACK_MS)
}

/** Opens a keep-alive connection, makes one request on it and leaves it idle. */
function idleKeepAlive(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1')
    s.once('error', reject)
    s.on('connect', () => s.write('GET /healthz HTTP/1.1\r\nHost: sabt.test\r\n\r\n'))
    s.once('data', () => resolve(s))
  })
}

const serverSockets = (sabt: TestSabt) =>
  new Promise<number>((r) => sabt.app.server.getConnections((_e, n) => r(n)))

describe('slow and oversized clients are cut off', () => {
  let sabt: TestSabt
  let port: number
  beforeAll(async () => {
    sabt = await startTestSabt({
      roles: ['gateway'],
      listen: true,
      env: testEnv({
        SABT_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
        SABT_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
        SABT_MAX_HEADER_BYTES: '4096',
        SABT_BODY_LIMIT: '2048',
      }),
    })
    port = Number(new URL(sabt.url!).port)
  })
  afterAll(async () => {
    await sabt?.cleanup()
  })

  it('answers 408 to a client that sends its headers a line at a time, by the headers deadline', async () => {
    let i = 0
    const x = await rawExchange(port, {
      start: HEAD,
      drip: { chunk: () => `X-Slow-${i++}: a\r\n`, everyMs: 50 },
      giveUpMs: REQUEST_TIMEOUT_MS * 3,
    })
    expect(x.status).toBe(408)
    expect(errorBody(x)).toMatchObject({
      statusCode: 408,
      code: 'SABT_REQUEST_TIMEOUT',
      errors: [{ field: '(headers)', rule: 'timeout' }],
    })
    // Cut by the headers deadline, well before the request deadline would have.
    expect(x.answeredMs).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_MS - 50)
    expect(x.answeredMs).toBeLessThan(HEADERS_TIMEOUT_MS + CHECK_EVERY_MS + SLACK_MS)
    expect(x.answeredMs).toBeLessThan(REQUEST_TIMEOUT_MS)
    expectLetGo(x)
  })

  it('applies the headers deadline to every request of a keep-alive connection, not just the first', async () => {
    // One quick request, an idle pause longer than the headers deadline (idle is allowed), then
    // the next request's headers a line at a time.
    let tick = 0
    const idleTicks = Math.ceil((HEADERS_TIMEOUT_MS * 1.5) / 50)
    const x = await rawExchange(port, {
      start: 'GET /healthz HTTP/1.1\r\nHost: sabt.test\r\n\r\n',
      drip: {
        chunk: () => {
          tick++
          if (tick < idleTicks) return ''
          return tick === idleTicks ? 'GET /healthz HTTP/1.1\r\n' : `X-Slow-${tick}: a\r\n`
        },
        everyMs: 50,
      },
      giveUpMs: REQUEST_TIMEOUT_MS * 3,
    })
    expect(x.statuses).toEqual([200, 408])
    const slowStartedMs = idleTicks * 50
    expect(x.closedMs - slowStartedMs).toBeLessThan(HEADERS_TIMEOUT_MS + CHECK_EVERY_MS + SLACK_MS)
    expect(x.gaveUp).toBe(false)
  })

  it('answers 408 to a client that sends its body a byte at a time, by the request deadline', async () => {
    const x = await rawExchange(port, {
      start: `${HEAD}Content-Length: 1000\r\n\r\n{`,
      drip: { chunk: () => ' ', everyMs: 50 },
      giveUpMs: REQUEST_TIMEOUT_MS * 3,
    })
    expect(x.status).toBe(408)
    expect(errorBody(x)).toMatchObject({
      statusCode: 408,
      code: 'SABT_REQUEST_TIMEOUT',
      errors: [{ field: '(body)', rule: 'timeout' }],
    })
    expect(x.answeredMs).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS - 50)
    expect(x.answeredMs).toBeLessThan(REQUEST_TIMEOUT_MS + CHECK_EVERY_MS + SLACK_MS)
    expectLetGo(x)
  })

  it('answers 431 to headers over the limit', async () => {
    const x = await rawExchange(port, {
      start: `${HEAD}X-Big: ${'a'.repeat(5000)}\r\nContent-Length: 2\r\n\r\n{}`,
      giveUpMs: 5000,
    })
    expect(x.status).toBe(431)
    // The body says what the status line says (it used to say 400 SABT_BAD_REQUEST).
    expect(errorBody(x)).toEqual({
      statusCode: 431,
      code: 'SABT_HEADERS_TOO_LARGE',
      message: expect.any(String),
      errors: [{ field: '(headers)', rule: 'max_bytes', message: 'must be at most 4096 bytes' }],
    })
    expect(x.gaveUp).toBe(false)
  })

  it('answers 400 naming the request for malformed HTTP (here: a smuggling attempt)', async () => {
    const x = await rawExchange(port, {
      start: `${HEAD}Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
      giveUpMs: 5000,
    })
    expect(x.status).toBe(400)
    expect(errorBody(x)).toMatchObject({
      statusCode: 400,
      code: 'SABT_BAD_REQUEST',
      errors: [{ field: '(request)', rule: 'http' }],
    })
    expect(x.gaveUp).toBe(false)
  })

  it('answers 413 to an announced over-limit body without waiting for it, and closes', async () => {
    const x = await rawExchange(port, {
      start: `${HEAD}Content-Length: 50000000\r\n\r\n{"a":"`,
      drip: { chunk: () => 'x'.repeat(16_384), everyMs: 20 },
      giveUpMs: 5000,
    })
    expect(x.status).toBe(413)
    expect(errorBody(x)).toMatchObject({
      code: 'SABT_BODY_TOO_LARGE',
      errors: [{ field: '(body)', rule: 'max_bytes' }],
    })
    expect(x.headers.connection).toBe('close')
    expect(x.answeredMs).toBeLessThan(1000)
    expect(x.gaveUp).toBe(false) // the server closed: it does not drain the 50 MB it was promised
    expect(x.sent).toBeLessThan(5_000_000)
  })

  it('answers 413 to a chunked body once it passes the limit, and closes', async () => {
    const kb = `400\r\n${'x'.repeat(1024)}\r\n`
    const x = await rawExchange(port, {
      start: `${HEAD}Transfer-Encoding: chunked\r\n\r\n${kb}`,
      drip: { chunk: () => kb, everyMs: 5 },
      giveUpMs: 5000,
    })
    expect(x.status).toBe(413)
    expect(errorBody(x)).toMatchObject({ code: 'SABT_BODY_TOO_LARGE' })
    expect(x.gaveUp).toBe(false)
    expect(x.sentBeforeAnswer).toBeLessThan(2048 * 8) // answered near the limit, not at the end
  })

  // Answering before the body is read (a 415 does) used to keep the connection alive: Node then
  // reads and discards the rest of the body, however slow or large.
  it('closes the connection after answering before the body was read', async () => {
    const x = await rawExchange(port, {
      start: `POST /v1/registrations HTTP/1.1\r\nHost: sabt.test\r\nContent-Type: text/plain\r\nContent-Length: 2000\r\n\r\n{`,
      drip: { chunk: () => ' ', everyMs: 50 },
      giveUpMs: REQUEST_TIMEOUT_MS * 2,
    })
    expect(x.status).toBe(415)
    expect(x.headers.connection).toBe('close')
    expect(x.answeredMs).toBeLessThan(SLACK_MS)
    expectLetGo(x)
    expect(x.responses).toBe(1)
  })

  it('keeps the connection alive after an error when the body was read whole', async () => {
    const body = JSON.stringify(registration({ national_id: '0499370898' }))
    const req = `${HEAD}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
    const x = await rawExchange(port, { start: req + req, giveUpMs: 1000 })
    expect(x.status).toBe(422)
    expect(x.headers.connection).not.toBe('close')
    expect(x.responses).toBe(2)
  })

  it('keeps serving new clients while hundreds of keep-alive connections sit idle', async () => {
    const idle = await Promise.all(Array.from({ length: 300 }, () => idleKeepAlive(port)))
    try {
      expect(await serverSockets(sabt)).toBeGreaterThanOrEqual(300)
      const t0 = Date.now()
      const res = await fetch(`${sabt.url}/v1/registrations`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(registration({ national_id: '0499370898' })),
      })
      expect(res.status).toBe(422)
      expect(Date.now() - t0).toBeLessThan(1000)
    } finally {
      for (const s of idle) s.destroy()
    }
  })
})

describe('at the connection limit, idle keep-alive connections make room', () => {
  let sabt: TestSabt
  let port: number
  beforeAll(async () => {
    sabt = await startTestSabt({
      roles: ['gateway'],
      listen: true,
      env: testEnv({ SABT_MAX_CONNECTIONS: '20' }),
    })
    port = Number(new URL(sabt.url!).port)
  })
  afterAll(async () => {
    await sabt?.cleanup()
  })

  it('closes idle connections when a new one is dropped, so the next attempt gets in', async () => {
    const idle = await Promise.all(Array.from({ length: 20 }, () => idleKeepAlive(port)))
    const closed = Promise.all(idle.map((s) => new Promise((r) => s.once('close', r))))
    for (const s of idle) s.on('end', () => s.end())
    try {
      // The first attempt finds every slot taken (dropped); the drop closes the idle ones.
      const status = await waitFor(
        () =>
          fetch(`${sabt.url}/healthz`)
            .then((r) => r.status)
            .catch(() => false),
        'a new client to get in',
        5000,
        50,
      )
      expect(status).toBe(200)
      await closed
    } finally {
      for (const s of idle) s.destroy()
    }
  })
})
