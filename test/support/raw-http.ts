import { connect, type Socket } from 'node:net'

/** What a raw HTTP/1.1 exchange looked like from the client's side of the socket. */
export interface RawExchange {
  /** The first response: null when the server closed without answering. */
  status: number | null
  headers: Record<string, string>
  body: string
  /** How many status lines came back (a server must never answer one request twice). */
  responses: number
  /** Every status code that came back, in order. */
  statuses: number[]
  /** Milliseconds from connect to the first response byte. */
  answeredMs: number | null
  /** Milliseconds from connect to the socket's close (by either side). */
  closedMs: number
  /** Bytes the client managed to write, in all and before the first response byte. */
  sent: number
  sentBeforeAnswer: number | null
  /** Whether the client gave up (`giveUpMs`) rather than the server closing. */
  gaveUp: boolean
}

/**
 * Speaks HTTP over a plain socket, to play the clients `fetch` cannot: one that sends its headers
 * a line at a time, a body a byte at a time, or more than it announced. Writes `start`, then
 * `drip()`'s chunk every `everyMs` for as long as the socket stays writable (also after an answer:
 * a hostile client does not stop), and resolves when the socket closes or after `giveUpMs`.
 * The socket is half-open capable, so a server that only half-closes is seen not to let go.
 */
export function rawExchange(
  port: number,
  opts: {
    start: string | Buffer
    drip?: { chunk: () => string | Buffer; everyMs: number }
    giveUpMs: number
    /** Called with the socket once the first response has arrived (e.g. to count server sockets). */
    onAnswer?: (socket: Socket) => void
  },
): Promise<RawExchange> {
  return new Promise((resolve) => {
    const t0 = Date.now()
    const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true })
    let raw = Buffer.alloc(0)
    let answeredMs: number | null = null
    let sent = 0
    let sentBeforeAnswer: number | null = null
    let timer: NodeJS.Timeout | null = null
    const write = (b: string | Buffer) => {
      if (socket.destroyed || !socket.writable) return
      sent += Buffer.byteLength(b)
      socket.write(b, () => {})
    }
    socket.on('connect', () => {
      write(opts.start)
      if (opts.drip) {
        const d = opts.drip
        timer = setInterval(() => write(d.chunk()), d.everyMs)
      }
    })
    socket.on('data', (d: Buffer) => {
      if (answeredMs === null) {
        answeredMs = Date.now() - t0
        sentBeforeAnswer = sent
        opts.onAnswer?.(socket)
      }
      raw = Buffer.concat([raw, d])
    })
    socket.on('error', () => {}) // EPIPE / ECONNRESET are how servers cut hostile clients off
    let gaveUp = false
    const giveUp = setTimeout(() => {
      gaveUp = true
      socket.destroy()
    }, opts.giveUpMs)
    // The server closed its half. A quiet client closes too; a dripping one keeps writing, and learns
    // from the reset whether the server really let go (or gives up: it did not).
    socket.on('end', () => {
      if (!opts.drip) socket.end()
    })
    socket.on('close', () => {
      if (timer) clearInterval(timer)
      clearTimeout(giveUp)
      resolve({
        ...parseResponse(raw),
        answeredMs,
        closedMs: Date.now() - t0,
        sent,
        sentBeforeAnswer,
        gaveUp,
      })
    })
  })
}

/** Parses the first HTTP response in `raw` (Content-Length bodies; enough for error answers). */
export function parseResponse(
  raw: Buffer,
): Pick<RawExchange, 'status' | 'headers' | 'body' | 'responses' | 'statuses'> {
  const text = raw.toString('utf8')
  const statuses = [...text.matchAll(/HTTP\/1\.[01] (\d{3}) /g)].map((m) => Number(m[1]))
  const responses = statuses.length
  const headEnd = text.indexOf('\r\n\r\n')
  if (headEnd < 0) return { status: null, headers: {}, body: text, responses, statuses }
  const [statusLine, ...lines] = text.slice(0, headEnd).split('\r\n')
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '')?.[1] ?? Number.NaN)
  const headers: Record<string, string> = {}
  for (const l of lines) {
    const i = l.indexOf(':')
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim()
  }
  const rest = raw.subarray(Buffer.byteLength(text.slice(0, headEnd + 4)))
  const len = headers['content-length'] !== undefined ? Number(headers['content-length']) : rest.length
  return {
    status: Number.isNaN(status) ? null : status,
    headers,
    body: rest.subarray(0, len).toString('utf8'),
    responses,
    statuses,
  }
}
