/** What made a batch flush: it filled up, its oldest item waited long enough, or the role is stopping. */
export type FlushReason = 'size' | 'time' | 'shutdown'

/**
 * Collects items and hands them to `flush` in batches of at most `size`, when a batch is full or
 * when its first item has waited `maxWaitMs`, whichever comes first. One flush at a time: items
 * that arrive during a flush form the next batch (the prefetch window bounds how many). With
 * `weigh`, size is counted in what each item weighs (a message of many records), and an item is
 * never split: a batch holds whole items, at most `size` of weight unless one item alone weighs more.
 */
export class Batcher<T> {
  #items: T[] = []
  #weight = 0
  #firstAt = 0
  #timer: NodeJS.Timeout | null = null
  #running: Promise<void> | null = null
  #stopped = false

  constructor(
    readonly opts: {
      size: number
      maxWaitMs: number
      /** What one item counts toward `size` (default 1). */
      weigh?: (item: T) => number
      /** A flush that threw (a bug, not a failure it handles itself): told here, and the loop goes on. */
      onError?: (err: unknown, items: T[]) => void
    },
    readonly flush: (items: T[], reason: FlushReason) => Promise<void>,
  ) {}

  /** Items waiting (not their weight). */
  get pending(): number {
    return this.#items.length
  }

  get busy(): boolean {
    return this.#running !== null
  }

  add(item: T): void {
    if (this.#items.length === 0) this.#firstAt = Date.now()
    this.#items.push(item)
    this.#weight += this.opts.weigh?.(item) ?? 1
    if (this.#running) return // the loop picks it up when the current flush ends
    if (this.#weight >= this.opts.size) this.#start('size')
    else if (!this.#timer) this.#arm()
  }

  #arm(): void {
    const wait = Math.max(0, this.opts.maxWaitMs - (Date.now() - this.#firstAt))
    this.#timer = setTimeout(() => {
      this.#timer = null
      if (!this.#running && this.#items.length > 0) this.#start('time')
    }, wait)
  }

  #start(reason: FlushReason): void {
    if (this.#timer) {
      clearTimeout(this.#timer)
      this.#timer = null
    }
    this.#running = this.#loop(reason).finally(() => {
      this.#running = null
    })
  }

  async #loop(first: FlushReason): Promise<void> {
    let reason: FlushReason = first
    for (;;) {
      const batch = this.#take()
      this.#firstAt = Date.now()
      try {
        await this.flush(batch, reason)
      } catch (err) {
        // Never an unhandled rejection (it ended the process): the owner decides what it means.
        this.opts.onError?.(err, batch)
      }
      if (this.#items.length === 0) return
      if (this.#stopped) reason = 'shutdown'
      else if (this.#weight >= this.opts.size) reason = 'size'
      else if (Date.now() - this.#firstAt >= this.opts.maxWaitMs) reason = 'time'
      else {
        this.#arm()
        return
      }
    }
  }

  /** The next batch: whole items, up to `size` of weight (at least one item). */
  #take(): T[] {
    const weigh = this.opts.weigh
    if (!weigh) {
      const batch = this.#items.splice(0, this.opts.size)
      this.#weight -= batch.length
      return batch
    }
    let n = 0
    let w = 0
    while (n < this.#items.length && (n === 0 || w + weigh(this.#items[n]!) <= this.opts.size)) {
      w += weigh(this.#items[n]!)
      n++
    }
    this.#weight -= w
    return this.#items.splice(0, n)
  }

  /** Flushes everything still pending (reason `shutdown`) and waits for it. */
  async drain(): Promise<void> {
    this.#stopped = true
    if (this.#running) await this.#running
    if (this.#items.length > 0) {
      this.#start('shutdown')
      await this.#running
    }
    if (this.#timer) {
      clearTimeout(this.#timer)
      this.#timer = null
    }
  }
}
