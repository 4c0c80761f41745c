import { toAsciiDigits } from './digits.js'

/**
 * Iranian mobile numbers, normalised to `09XXXXXXXXX`. Accepted spellings: `09…`, `+989…`, `989…`,
 * `00989…` (spaces and dashes between digits are tolerated, as people type them).
 */
export function normaliseMobile(raw: string): { ok: true; value: string } | { ok: false; rule: 'format' } {
  const compact = toAsciiDigits(raw).replace(/[\s-]/g, '')
  const m = /^(?:0|\+98|98|0098)(9[0-9]{9})$/.exec(compact)
  if (!m) return { ok: false, rule: 'format' }
  return { ok: true, value: `0${m[1]}` }
}
