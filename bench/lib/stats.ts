/** Median with min and max: every figure in the report is one of these over ≥ 3 runs. */
export interface Spread {
  median: number
  min: number
  max: number
  n: number
}

export function spread(values: readonly number[]): Spread {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (v.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN, n: 0 }
  const mid = Math.floor(v.length / 2)
  const median = v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2
  return { median, min: v[0]!, max: v[v.length - 1]!, n: v.length }
}

/** Spread of one numeric field over a list of run results. */
export function over<T>(runs: readonly T[], f: (r: T) => number): Spread {
  return spread(runs.map(f))
}

function num(x: number, digits: number): string {
  if (!Number.isFinite(x)) return '—'
  if (Math.abs(x) >= 1000) return Math.round(x).toLocaleString('en-US')
  const t = x.toFixed(digits)
  return t.includes('.') ? t.replace(/\.?0+$/, '') : t
}

/** "12,345 (11,900–12,800)" or just the value when there was one run. */
export function fmt(s: Spread | undefined, digits = 1): string {
  if (!s || s.n === 0) return '—'
  if (s.n === 1 || s.min === s.max) return num(s.median, digits)
  return `${num(s.median, digits)} (${num(s.min, digits)}–${num(s.max, digits)})`
}
