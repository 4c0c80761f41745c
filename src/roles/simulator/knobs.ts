import Type, { type Static } from 'typebox'
import { DEFAULT_FAIL_PERCENT, type ProviderName } from './answers.js'

/** One provider's behaviour, settable at start (SABT_SIMULATOR_KNOBS) and at run time (admin API). */
export const Knobs = Type.Object(
  {
    latency_median_ms: Type.Number({ minimum: 0, maximum: 600_000 }),
    latency_p99_ms: Type.Number({ minimum: 0, maximum: 600_000 }),
    error_rate: Type.Number({ minimum: 0, maximum: 1, description: 'share of calls answered 503' }),
    timeout_rate: Type.Number({ minimum: 0, maximum: 1, description: 'share of calls never answered' }),
    rate_limit_per_s: Type.Integer({
      minimum: 0,
      description: '429 + Retry-After past this many calls in a second (0: none)',
    }),
    outage: Type.Boolean({ description: 'answer every call 503' }),
    fail_percent: Type.Integer({ minimum: 0, maximum: 100, description: 'share of inputs answered "no"' }),
  },
  { additionalProperties: false },
)
export type Knobs = Static<typeof Knobs>

export const KnobsPatch = Type.Partial(Knobs, { additionalProperties: false })
export type KnobsPatch = Static<typeof KnobsPatch>

export function defaultKnobs(provider: ProviderName | 'sms'): Knobs {
  return {
    latency_median_ms: 20,
    latency_p99_ms: 60,
    error_rate: 0,
    timeout_rate: 0,
    rate_limit_per_s: 0,
    outage: false,
    fail_percent: provider === 'sms' ? 0 : DEFAULT_FAIL_PERCENT[provider],
  }
}

/**
 * A latency draw from a log-normal distribution with the given median and 99th percentile
 * (the shape real service latencies take: most calls near the median, a long right tail).
 */
export function drawLatency(
  k: Pick<Knobs, 'latency_median_ms' | 'latency_p99_ms'>,
  rand = Math.random,
): number {
  const median = k.latency_median_ms
  if (median <= 0) return 0
  const p99 = Math.max(k.latency_p99_ms, median)
  const sigma = Math.log(p99 / median) / 2.326
  // Box–Muller: a standard normal draw.
  const u = 1 - rand()
  const v = rand()
  const z = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v)
  return median * Math.exp(sigma * z)
}
