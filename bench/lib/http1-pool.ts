/**
 * The open-loop driver's HTTP client (decision 011's addendum): keep-alive HTTP/1.1 connections,
 * one request at a time on each, requests queued in order while every connection is busy — what
 * undici's Pool does for the driver (`pipelining: 1`), without its per-request machinery. On two
 * shared cores the driver's CPU is taken from the servers it measures: at 7,000 req/s undici's
 * dispatch cost 59 µs of CPU per request, this 36, most of it the loopback TCP stack's.
 *
 * It speaks only what the bench's servers answer: a status line, headers, and a body framed by
 * Content-Length or chunked. `Connection: close` from the server, a socket error or a close while a
 * request waits: that request fails (onError) and the connection is opened again.
 */
import { connect, type Socket } from 'node:net'

export interface Http1Handler {
  /** The answer, whole: its status and (when asked for) its body. */
  onComplete(status: number, body: Buffer | null): void
  onError(err: Error): void
}

interface Pending {
  bytes: string
  handler: Http1Handler
}

const CRLF2 = Buffer.from('\r\n\r\n')
const CRLF = Buffer.from('\r\n')

/** One keep-alive connection and the answer it is reading. */
class Connection {
  socket: Socket
  current: Pending | null = null
  buf: Buffer = Buffer.alloc(0)
  closed = false
  connected = false

  constructor(
    readonly pool: Http1Pool,
    host: string,
    port: number,
  ) {
    this.socket = connect({ host, port, noDelay: true })
    this.socket.on('connect', () => {
      this.connected = true
    })
    this.socket.on('data', (chunk: Buffer) => this.#data(chunk))
    this.socket.on('error', () => {}) // 'close' follows; the request in flight fails there
    this.socket.on('close', () => this.#gone(new Error('connection closed')))
  }

  send(p: Pending): void {
    this.current = p
    this.socket.write(p.bytes)
  }

  #gone(err: Error): void {
    if (this.closed) return
    this.closed = true
    const p = this.current
    this.current = null
    this.buf = Buffer.alloc(0)
    this.pool.replace(this, this.connected)
    p?.handler.onError(err)
  }

  #data(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk])
    const p = this.current
    if (!p) {
      // Nothing was asked: the server speaks out of turn (it should not). Drop the connection.
      this.socket.destroy()
      return
    }
    const headEnd = this.buf.indexOf(CRLF2)
    if (headEnd < 0) return
    const head = this.buf.toString('latin1', 0, headEnd).toLowerCase()
    const status = Number(head.slice(9, 12))
    let bodyStart = headEnd + 4
    let body: Buffer
    let consumed: number
    const cl = /\r\ncontent-length:\s*(\d+)/.exec(head)
    if (cl) {
      const length = Number(cl[1])
      if (this.buf.length < bodyStart + length) return
      body = this.buf.subarray(bodyStart, bodyStart + length)
      consumed = bodyStart + length
    } else if (/\r\ntransfer-encoding:\s*chunked/.test(head)) {
      const parts: Buffer[] = []
      for (;;) {
        const lineEnd = this.buf.indexOf(CRLF, bodyStart)
        if (lineEnd < 0) return
        const size = Number.parseInt(this.buf.toString('latin1', bodyStart, lineEnd), 16)
        if (this.buf.length < lineEnd + 2 + size + 2) return
        if (size === 0) {
          consumed = lineEnd + 4
          break
        }
        parts.push(this.buf.subarray(lineEnd + 2, lineEnd + 2 + size))
        bodyStart = lineEnd + 2 + size + 2
      }
      body = Buffer.concat(parts)
    } else {
      body = Buffer.alloc(0)
      consumed = bodyStart
    }
    const close = /\r\nconnection:\s*close/.test(head)
    this.buf = consumed === this.buf.length ? Buffer.alloc(0) : this.buf.subarray(consumed)
    this.current = null
    p.handler.onComplete(status, this.pool.wantBodies ? body : null)
    if (close) {
      this.socket.destroy()
      return
    }
    this.pool.idle(this)
  }
}

/** `connections` keep-alive connections to one origin; requests wait in order for a free one. */
export class Http1Pool {
  readonly #free: Connection[] = []
  readonly #all = new Set<Connection>()
  readonly #queue: Pending[] = []
  #qHead = 0
  #closing = false
  readonly #host: string
  readonly #port: number

  constructor(
    origin: string,
    connections: number,
    /** Whether onComplete gets the body (the driver keeps the 202s' ids). */
    readonly wantBodies: boolean,
  ) {
    const u = new URL(origin)
    this.#host = u.hostname
    this.#port = Number(u.port || 80)
    for (let i = 0; i < connections; i++) this.#open()
  }

  #open(): void {
    const c = new Connection(this, this.#host, this.#port)
    this.#all.add(c)
    this.idle(c)
  }

  /** The bytes of a POST with a body (the driver builds each request once, as a string). */
  static post(path: string, host: string, headers: string, body: string): string {
    return `POST ${path} HTTP/1.1\r\nhost: ${host}\r\n${headers}content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  }

  request(bytes: string, handler: Http1Handler): void {
    const c = this.#free.pop()
    if (c) c.send({ bytes, handler })
    else this.#queue.push({ bytes, handler })
  }

  /** A connection is free: the oldest waiting request goes on it. */
  idle(c: Connection): void {
    if (this.#qHead < this.#queue.length) {
      const next = this.#queue[this.#qHead]!
      this.#queue[this.#qHead++] = undefined as never
      if (this.#qHead > 4096 && this.#qHead * 2 > this.#queue.length) {
        this.#queue.splice(0, this.#qHead)
        this.#qHead = 0
      }
      c.send(next)
      return
    }
    this.#free.push(c)
  }

  /**
   * A connection went away: a new one takes its place (unless the pool is closing) — at once after
   * a close, 200 ms later when it never connected (the server is not there: no busy loop).
   */
  replace(c: Connection, hadConnected: boolean): void {
    this.#all.delete(c)
    const i = this.#free.indexOf(c)
    if (i >= 0) this.#free.splice(i, 1)
    if (this.#closing) return
    if (hadConnected) this.#open()
    else setTimeout(() => this.#closing || this.#open(), 200).unref()
  }

  close(): void {
    this.#closing = true
    for (const c of this.#all) c.socket.destroy()
    for (let i = this.#qHead; i < this.#queue.length; i++)
      this.#queue[i]!.handler.onError(new Error('pool closed'))
    this.#queue.length = 0
    this.#qHead = 0
  }
}
