import { hash } from 'node:crypto'

const BLOCK = 64

/**
 * HMAC-SHA-256 (RFC 2104) for a hot path: H((K ⊕ opad) ‖ H((K ⊕ ipad) ‖ m)) with node:crypto's
 * one-shot `hash`, the padded keys made once and the buffers reused. Same answers as
 * `createHmac('sha256', key)` (the test holds the two together: long keys, empty and non-ASCII
 * messages). 0.9 µs a call against createHmac's 2.8 in a loop (decision 021): no per-call Hmac
 * object (a JS stream wrapper and a native context), no Buffer out of `hash` (its 'buffer'
 * output costs twice its 'latin1'), no view made per call. Synchronous use on one thread only.
 */
export class HmacSha256 {
  /** K ⊕ ipad, then room for the message (grown when one might not fit). */
  #inner: Buffer
  /** Views of #inner ending after a message of n bytes, made once per n. */
  #views: Buffer[] = []
  /** K ⊕ opad, then the inner digest. */
  readonly #outer = Buffer.alloc(BLOCK + 32)
  readonly #ipad = Buffer.alloc(BLOCK)

  constructor(key: Buffer | string) {
    let k: Buffer = typeof key === 'string' ? Buffer.from(key, 'utf8') : key
    if (k.length > BLOCK) k = hash('sha256', k, 'buffer')
    for (let i = 0; i < BLOCK; i++) {
      const b = k[i] ?? 0
      this.#ipad[i] = b ^ 0x36
      this.#outer[i] = b ^ 0x5c
    }
    this.#inner = this.#grow(128)
  }

  /** The MAC of a message (a string is taken as UTF-8), in lowercase hex. */
  hex(message: string): string {
    // UTF-8 takes at most 3 bytes per UTF-16 unit: a buffer this large always holds the message.
    if (BLOCK + message.length * 3 > this.#inner.length) this.#inner = this.#grow(message.length * 3)
    const n = this.#inner.write(message, BLOCK, 'utf8')
    let view = this.#views[n]
    if (!view) {
      view = this.#inner.subarray(0, BLOCK + n)
      this.#views[n] = view
    }
    this.#outer.write(hash('sha256', view, 'binary'), BLOCK, 'latin1')
    return hash('sha256', this.#outer, 'hex')
  }

  #grow(room: number): Buffer {
    const b = Buffer.alloc(BLOCK + room)
    this.#ipad.copy(b)
    this.#views = []
    return b
  }
}
