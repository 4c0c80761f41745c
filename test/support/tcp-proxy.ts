import { connect, createServer, type Server, type Socket } from 'node:net'

/**
 * A TCP proxy a test can cut and restore: "the broker is gone" / "the database is gone" without
 * touching the shared services. `cut()` drops every connection and refuses new ones;
 * `restore()` listens again on the same port.
 */
export class TcpProxy {
  #server: Server | null = null
  #sockets = new Set<Socket>()
  #downstream = new Map<Socket, Socket>() // upstream → client: the server's answers
  #upstreamOf = new Map<Socket, Socket>() // client → upstream: what the client sends
  #paused = false
  #requestsPaused = false
  #taps: Array<(chunk: Buffer) => void> = []
  port = 0

  constructor(
    readonly targetHost: string,
    readonly targetPort: number,
  ) {}

  async start(port = 0): Promise<number> {
    const server = createServer((client) => {
      const upstream = connect(this.targetPort, this.targetHost)
      this.#sockets.add(client)
      this.#sockets.add(upstream)
      this.#downstream.set(upstream, client)
      this.#upstreamOf.set(client, upstream)
      for (const tap of this.#taps) client.on('data', tap)
      const drop = () => {
        client.destroy()
        upstream.destroy()
        this.#sockets.delete(client)
        this.#sockets.delete(upstream)
        this.#downstream.delete(upstream)
        this.#upstreamOf.delete(client)
      }
      client.on('error', drop).on('close', drop)
      upstream.on('error', drop).on('close', drop)
      if (!this.#requestsPaused) client.pipe(upstream)
      else client.pause()
      if (!this.#paused) upstream.pipe(client)
      else upstream.pause()
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, '127.0.0.1', () => resolve())
    })
    this.#server = server
    this.port = (server.address() as { port: number }).port
    return this.port
  }

  url(scheme: string, rest = ''): string {
    return `${scheme}://127.0.0.1:${this.port}${rest}`
  }

  /** Stops forwarding the server's answers (a broker that takes publishes but never confirms). */
  pauseReplies(): void {
    this.#paused = true
    for (const [up, client] of this.#downstream) {
      up.unpipe(client)
      up.pause()
    }
  }

  /** Sees every byte clients send from now on (new connections included), e.g. to read AMQP frames. */
  tapRequests(tap: (chunk: Buffer) => void): void {
    this.#taps.push(tap)
    for (const client of this.#upstreamOf.keys()) client.on('data', tap)
  }

  /**
   * Stops reading what clients send (a server that stops reading its socket, as a broker under a
   * resource alarm does): the client's writes back up into its own buffers.
   */
  pauseRequests(): void {
    this.#requestsPaused = true
    for (const [client, up] of this.#upstreamOf) {
      client.unpipe(up)
      client.pause()
    }
  }

  resumeRequests(): void {
    this.#requestsPaused = false
    for (const [client, up] of this.#upstreamOf) client.pipe(up)
  }

  resumeReplies(): void {
    this.#paused = false
    for (const [up, client] of this.#downstream) up.pipe(client)
  }

  async cut(): Promise<void> {
    const server = this.#server
    this.#server = null
    for (const s of this.#sockets) s.destroy()
    this.#sockets.clear()
    this.#downstream.clear()
    this.#upstreamOf.clear()
    if (server) await new Promise<void>((r) => server.close(() => r()))
  }

  async restore(): Promise<void> {
    if (this.#server) return
    for (let i = 0; ; i++) {
      try {
        await this.start(this.port)
        return
      } catch (err) {
        if (i > 50) throw err
        await new Promise((r) => setTimeout(r, 50))
      }
    }
  }

  async close(): Promise<void> {
    await this.cut()
  }
}
