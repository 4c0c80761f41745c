/**
 * A job run every `everyMs` (an unref'd timer: it never keeps the process alive), one run at a
 * time — a tick that finds the previous run still going lets it be, `run()` joins it —
 * and `stop()` waits for the run in progress. What the checker's sweepers (callbacks owed,
 * messages to citizens owed) share.
 */
export class Periodic<T> {
  #timer: NodeJS.Timeout | null = null
  #running: Promise<T> | null = null

  constructor(
    readonly job: () => Promise<T>,
    readonly everyMs: number,
    readonly onError: (err: unknown) => void,
  ) {}

  start(): void {
    if (this.#timer) return
    this.#timer = setInterval(() => {
      if (this.#running) return // still going: a tick never joins it (its failure is reported once)
      this.run().catch(this.onError)
    }, this.everyMs)
    this.#timer.unref()
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = null
    await this.#running?.catch(() => {})
  }

  /** One run now (or the one in progress). */
  run(): Promise<T> {
    this.#running ??= this.job().finally(() => {
      this.#running = null
    })
    return this.#running
  }
}

/** Rows grouped by a key, in first-seen order. */
export function groupBy<R, K>(
  rows: Iterable<R>,
  key: (r: R) => K,
  value: (r: R) => string,
): Map<K, string[]> {
  const by = new Map<K, string[]>()
  for (const r of rows) {
    const list = by.get(key(r))
    if (list) list.push(value(r))
    else by.set(key(r), [value(r)])
  }
  return by
}
