import { Writable } from 'node:stream'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { createLogger, scrub } from './logger.js'

const SCRIPTS = [0x30, 0x6f0, 0x660, 0xff10] // ASCII, Persian, Arabic-Indic, full-width zero
const SEPARATORS = [' ', '-', '.', '  ', ' - ', '\u00a0', '(', ') ', '\u2010', '–']

/** Any digit of any script back to ASCII, everything that is not a digit or '*' dropped. */
function digitStream(text: string): string {
  let out = ''
  for (const ch of text) {
    const c = ch.codePointAt(0)!
    const base = SCRIPTS.find((z) => c >= z && c <= z + 9)
    if (base !== undefined) out += String(c - base)
    else if (ch === '*') out += '*'
  }
  return out
}

/** A personal value as ASCII digits: a national id, or a mobile in one of its written prefixes. */
const personalValue = fc.oneof(
  fc.stringMatching(/^[0-9]{10}$/),
  fc.stringMatching(/^09[0-9]{9}$/),
  fc.stringMatching(/^9[0-9]{9}$/),
  fc.stringMatching(/^989[0-9]{9}$/),
  fc.stringMatching(/^00989[0-9]{9}$/),
)

/** How it is written: each digit in any script, separators anywhere between digits, maybe a '+'. */
const writtenForm = personalValue.chain((ascii) =>
  fc
    .tuple(
      fc.array(fc.constantFrom(...SCRIPTS), { minLength: ascii.length, maxLength: ascii.length }),
      fc.array(fc.option(fc.constantFrom(...SEPARATORS), { freq: 3 }), {
        minLength: ascii.length,
        maxLength: ascii.length,
      }),
      fc.boolean(),
    )
    .map(([scripts, seps, plus]) => {
      let s = plus && ascii.startsWith('98') ? '+' : ''
      for (let i = 0; i < ascii.length; i++) {
        s += String.fromCodePoint(scripts[i]! + Number(ascii[i]))
        if (i < ascii.length - 1 && seps[i]) s += seps[i]
      }
      return { ascii, written: s }
    }),
)

/** Text around it with no digit of any script (a digit beside it would make it another number). */
const context = fc
  .string({ maxLength: 12, unit: fc.constantFrom(...'abcXYZ :=,;"\'/#!?_-\n\tشماره موبایل'.split('')) })
  .map((s) => s)

/** Where it is logged: the message, a field at any depth (objects and arrays), or an error. */
type Placement = { kind: 'msg' } | { kind: 'field'; path: (string | number)[] } | { kind: 'error' }
const placement: fc.Arbitrary<Placement> = fc.oneof(
  fc.constant({ kind: 'msg' } as const),
  fc.constant({ kind: 'error' } as const),
  fc
    .array(fc.oneof(fc.constantFrom('detail', 'input', 'data', 'x'), fc.nat({ max: 2 })), {
      minLength: 0,
      maxLength: 12,
    })
    .map((path) => ({ kind: 'field', path }) as const),
)

function nest(path: (string | number)[], leaf: unknown): unknown {
  let v = leaf
  for (let i = path.length - 1; i >= 0; i--) {
    const p = path[i]!
    if (typeof p === 'number') {
      const arr: unknown[] = Array.from({ length: p + 1 }, () => 'other')
      arr[p] = v
      v = arr
    } else v = { [p]: v }
  }
  return { note: v }
}

function capture() {
  const lines: string[] = []
  const dest = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n')) if (l) lines.push(l)
      cb()
    },
  })
  return { log: createLogger({ level: 'info', destination: dest }), lines }
}

describe('log masking (property)', () => {
  it('no national id or mobile survives into a log line, whatever its digits, separators or depth', () => {
    const { log, lines } = capture()
    fc.assert(
      fc.property(writtenForm, context, context, placement, ({ ascii, written }, before, after, where) => {
        lines.length = 0
        const text = `${before}${written}${after}`
        if (where.kind === 'msg') log.info(text)
        else if (where.kind === 'error') log.error({ err: new Error(text) }, 'failed')
        else log.info(nest(where.path, text) as object, 'event')
        expect(lines.length).toBe(1)
        const { time: _t, pid: _p, ...rest } = JSON.parse(lines[0]!) as Record<string, unknown>
        const stream = digitStream(JSON.stringify(rest))
        // Neither the whole value nor its last ten digits (the mobile without its prefix) is there.
        expect(stream).not.toContain(ascii)
        expect(stream).not.toContain(ascii.slice(-10))
      }),
      { numRuns: 2000 },
    )
  })

  it('keeps the registration id (a UUID) whole, and short numbers as they are', () => {
    const id = '01234567-0123-7123-8123-012345678901'
    expect(scrub(`registration ${id} took 250 ms, 3 retries, at 2026-12-01T13:31:44.123Z`)).toBe(
      `registration ${id} took 250 ms, 3 retries, at 2026-12-01T13:31:44.123Z`,
    )
    expect(scrub(`${id} 0499370899`)).toBe(`${id} 04******99`)
    expect(scrub('049-937-0899 and 0912 123 4567 and ۰۹۱۲-۱۲۳-4567')).toBe(
      '04*-***-**99 and 09** *** **67 and ۰۹**-***-**67',
    )
  })

  it('masks personal fields by name at any depth, and survives a cycle', () => {
    const { log, lines } = capture()
    const deep: Record<string, unknown> = { national_id: '0499370899', mobile: 9121234567 }
    let o: Record<string, unknown> = deep
    for (let i = 0; i < 80; i++) o = { next: o }
    const cyclic: Record<string, unknown> = { a: 1 }
    cyclic.self = cyclic
    log.info({ o, cyclic }, 'deep')
    expect(lines[0]).not.toContain('0499370899')
    expect(lines[0]).not.toContain('9121234567')
    expect(lines[0]).toContain('[Circular]')
  })

  it("never writes a provider's reason text (treated as personal data), at any depth; the reason code stays", () => {
    const { log, lines } = capture()
    log.info(
      { reason: 'deceased', reason_text: 'Registry: died 1400/01/01', detail: { reason_text: 'deep words' } },
      'x',
    )
    expect(lines[0]).toContain('"reason":"deceased"')
    expect(lines[0]).not.toContain('died')
    expect(lines[0]).not.toContain('deep words')
  })
})
