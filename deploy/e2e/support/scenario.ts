import { once } from 'node:events'
import { mkdirSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { Burst, type Sent } from './load.js'
import { ROOT } from './paths.js'
import { until } from './run.js'
import type { Stack } from './stack.js'
import { count, type Row, settle, table } from './verify.js'

export async function freePort(): Promise<number> {
  const s = createServer()
  s.listen(0, '127.0.0.1')
  await once(s, 'listening')
  const port = (s.address() as { port: number }).port
  await new Promise((r) => s.close(r))
  return port
}

/** Records in PostgreSQL now: the baseline a scenario's "recorded" is counted from. */
export async function totalRecords(stack: Stack): Promise<number> {
  return (await count(stack, [])).total
}

/**
 * A fault under load: a burst through the edge at `concurrency` in flight; once `faultAfter`
 * answers are in, `fault()` runs (it returns when the fault is undone, or at once); the burst
 * goes on until the gateways have answered `tail` more 202s after that, then stops. Returns the
 * burst and when the fault started.
 */
export async function underLoad(
  stack: Stack,
  opts: { concurrency?: number; faultAfter?: number; tail?: number; total?: number },
  fault: () => Promise<void>,
): Promise<{ burst: Burst; faultAt: number; undoneAt: number }> {
  const burst = new Burst(stack.url, {
    concurrency: opts.concurrency ?? 256,
    total: opts.total ?? 200_000,
    ca: stack.ca,
  })
  await burst.answered(opts.faultAfter ?? 1000)
  const faultAt = Date.now()
  await fault()
  const undoneAt = Date.now()
  // Wait for 202s again (the fault may have stopped intake), then let `tail` more come.
  await until(
    '202s again after the fault',
    async () => (burst.sent.some((s) => s.status === 202 && s.at > undoneAt) ? true : undefined),
    120_000,
    200,
  )
  const target = burst.accepted().length + (opts.tail ?? 1000)
  await until(
    `${opts.tail ?? 1000} more 202s`,
    async () => (burst.accepted().length >= target ? true : undefined),
    120_000,
    200,
  )
  await burst.stop()
  return { burst, faultAt, undoneAt }
}

export function refusedNote(sent: Sent[]): string {
  const by = new Map<string, number>()
  for (const s of sent) if (s.status !== 202) by.set(String(s.status), (by.get(String(s.status)) ?? 0) + 1)
  return by.size ? `refused: ${[...by].map(([k, v]) => `${v}× ${k}`).join(', ')}` : ''
}

/** Prints the file's table and keeps it in test-results/deploy/ (RELIABILITY.md takes its rows). */
export function report(name: string, title: string, rows: Row[]): void {
  const text = `### ${title}\n\n${table(rows)}\n`
  console.log(`\n${text}`)
  mkdirSync(join(ROOT, 'test-results/deploy'), { recursive: true })
  writeFileSync(join(ROOT, `test-results/deploy/${name}.md`), text)
}

export { settle }
