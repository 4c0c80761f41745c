import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { newUuidV7 } from '../../src/domain/uuid7.js'
import { sealPersonal } from '../../src/privacy/personal-fields.js'
import { parseDataKeys, Sealer } from '../../src/privacy/sealing.js'
import { intakeMessage } from '../lib/bodies.js'
import type { BenchContext, Scenario, ScenarioResult } from '../lib/context.js'
import { checksAvailable } from '../lib/pipeline.js'
import { freePort } from '../lib/procs.js'
import { BenchSabt } from '../lib/sabt.js'
import { fmt, over } from '../lib/stats.js'
import { cpuPct, cpuSeconds, measure } from '../lib/system.js'

/**
 * SMS to citizens while the provider's rate limit binds (issue 14): N registrations recorded at
 * once (the outbox triggers owe each a receipt), then the checker sends them through the SMS
 * provider of the simulator, limited to R a second by the checker's shared rate schedule (the
 * simulator refuses past R + 10 %). Measured over a window while thousands still wait: receipts
 * sent per second ÷ R, the simulator's 429s; and, meanwhile, one "am I registered?" one-time code
 * asked at the status role — how long until the provider took it, with the receipts queued ahead.
 */
const SMS_CHECKS = `retry_tiers: [1s, 10s, 1m, 10m]
checks:
  identity:
    provider: identity
    url: \${SABT_SIMULATOR_URL:-http://127.0.0.1:8090}/identity
    rate_per_second: 300
campaigns:
  demo:
    title: Demo (receipts by SMS)
`

interface Run {
  rate: number
  run: number
  backlog: number
  window_s: number
  sent: number
  per_s: number
  share: number
  rate_limited: number
  otp_ms: number
  owed_at_otp: number
  cpu: Record<string, number>
}

export const sms: Scenario = {
  name: 'sms',
  title: 'SMS to citizens against the provider’s rate limit (issue 14)',
  byDefault: true,
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const avail = checksAvailable()
    if (!avail.ok) return { name: 'sms', title: this.title, markdown: `_Skipped: ${avail.why}_\n`, data: {} }
    const n = Number(process.env.SABT_BENCH_SMS_N ?? (ctx.quick ? 20_000 : 100_000))
    const rates = ctx.quick ? [200] : [200, 1000]
    const windowS = ctx.quick ? 6 : 20
    const dir = await mkdtemp(join(tmpdir(), 'sabt-bench-sms-'))
    const rows: Run[] = []
    try {
      for (const rate of rates)
        for (let run = 1; run <= ctx.runs; run++) {
          const config = join(dir, `sms-${rate}.yaml`)
          await writeFile(
            config,
            `${SMS_CHECKS}sms:\n  url: \${SABT_SIMULATOR_URL:-http://127.0.0.1:8090}/sms\n  timeout_ms: 2000\n  concurrency: 64\n  rate_per_second: ${rate}\n`,
          )
          const sabt = await BenchSabt.create('sms', { SABT_CONFIG: config, SABT_SMS_SWEEP_MS: '200' })
          try {
            rows.push(await oneRun(ctx, sabt, { rate, run, n, windowS }))
          } finally {
            await sabt.cleanup()
          }
        }
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
    const at = (r: number) => rows.filter((x) => x.rate === r)
    const lines = [
      `${n.toLocaleString('en-US')} registrations of a campaign with SMS written in one statement (the outbox triggers owe each a receipt); the simulator's SMS provider at 20 ms, refusing past the limit + 10 %; the checker (concurrency 64) sends. Receipts sent per second counted from \`citizen_messages.sent_at\` over ${windowS} s, from 5 s after the first was sent. One one-time code asked at the status role (POST /v1/campaigns/demo/lookup) at the start of the window: time until its SMS was taken by the provider, with the receipts still owed then.`,
      '',
      '| provider limit | receipts sent / s | share of the limit | provider 429s | one-time code delivered after | receipts owed then | checker CPU % |',
      '|---:|---:|---:|---:|---:|---:|---:|',
      ...rates.map((r) => {
        const rs = at(r)
        return `| ${r}/s | ${fmt(
          over(rs, (x) => x.per_s),
          1,
        )} | ${fmt(
          over(rs, (x) => x.share * 100),
          1,
        )} % | ${rs.reduce((a, x) => a + x.rate_limited, 0)} | ${fmt(
          over(rs, (x) => x.otp_ms),
          0,
        )} ms | ${fmt(
          over(rs, (x) => x.owed_at_otp),
          0,
        )} | ${fmt(
          over(rs, (x) => x.cpu.checker ?? Number.NaN),
          0,
        )} |`
      }),
      '',
    ]
    return {
      name: 'sms',
      title: this.title,
      markdown: lines.join('\n'),
      data: { rows },
      headline: {
        share_of_limit: Math.min(...rates.map((r) => over(at(r), (x) => x.share).median)),
        otp_ms: Math.max(...rates.map((r) => over(at(r), (x) => x.otp_ms).median)),
        rate_limited: rows.reduce((a, x) => a + x.rate_limited, 0),
      },
    }
  },
}

async function oneRun(
  ctx: BenchContext,
  sabt: BenchSabt,
  o: { rate: number; run: number; n: number; windowS: number },
): Promise<Run> {
  const env = sabt.env
  const sealer = new Sealer(parseDataKeys(env.SABT_DATA_KEYS!, undefined, env.SABT_INDEX_KEY!))
  // The backlog, and one person (the last) who will ask for a one-time code.
  const ids: string[] = []
  const idx: Buffer[] = []
  const nid: Buffer[] = []
  const mob: Buffer[] = []
  let asker = { national_id: '', mobile: '' }
  for (let i = 0; i < o.n; i++) {
    const id = newUuidV7()
    const person = {
      national_id: intakeMessage(id, 'demo', 170_000_000 + o.run * 1_000_000 + i).national_id as string,
      mobile: `0912${String(i).padStart(7, '0')}`,
    }
    if (i === o.n - 1) asker = person
    const sealed = sealPersonal(sealer, id, person)
    ids.push(id)
    idx.push(sealed.nationalIdIndex)
    nid.push(sealed.nationalIdSealed)
    mob.push(sealed.mobileSealed)
  }
  await sabt.sql(
    `INSERT INTO registrations (id, campaign, national_id_index, national_id_sealed, mobile_sealed, key_id, received_at, status)
     SELECT t.id, 'demo', t.idx, t.nid, t.mob, $5, now(), 'recorded'
     FROM unnest($1::uuid[], $2::bytea[], $3::bytea[], $4::bytea[]) AS t(id, idx, nid, mob)`,
    [ids, idx, nid, mob, sealer.currentKeyId],
  )
  const simPort = await freePort()
  const knob = { latency_median_ms: 20, latency_p99_ms: 20, rate_limit_per_s: Math.ceil(o.rate * 1.1) }
  const simulator = await sabt.start('simulator', {
    name: 'sms-simulator',
    env: { SABT_SIMULATOR_PORT: String(simPort), SABT_SIMULATOR_KNOBS: JSON.stringify({ sms: knob }) },
  })
  sabt.env.SABT_SIMULATOR_URL = `http://127.0.0.1:${simPort}`
  const status = await sabt.start('status', { name: 'sms-status' })
  await ctx.idle()
  const checker = await sabt.start('checker', { name: 'sms-checker' })
  const sentCount = async () =>
    (
      await sabt.sql<{ c: number }>(
        "SELECT count(*)::int AS c FROM citizen_messages WHERE kind = 'receipt' AND state = 'sent'",
      )
    )[0]!.c
  const until = Date.now() + 60_000
  while ((await sentCount()) === 0) {
    if (Date.now() > until) throw new Error('sms: no receipt sent within 60 s of the checker starting')
    await new Promise((r) => setTimeout(r, 100))
  }
  await new Promise((r) => setTimeout(r, 5000))
  let otpMs = Number.NaN
  let owed = 0
  const m = await measure(
    { checker: () => cpuSeconds(checker.pid), simulator: () => cpuSeconds(simulator.pid) },
    async () => {
      const from = (await sabt.sql<{ t: Date }>('SELECT now() AS t'))[0]!.t
      const t0 = Date.now()
      const res = await fetch(`${status.url}/v1/campaigns/demo/lookup`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(asker),
      })
      if (res.status !== 202) throw new Error(`sms: the lookup answered ${res.status} ${await res.text()}`)
      owed = (
        await sabt.sql<{ c: number }>(
          "SELECT count(*)::int AS c FROM citizen_messages WHERE kind = 'receipt' AND state = 'pending'",
        )
      )[0]!.c
      for (;;) {
        const [row] = await sabt.sql<{ s: string }>('SELECT sms_state AS s FROM lookup_codes LIMIT 1')
        if (row?.s === 'sent') {
          otpMs = Date.now() - t0
          break
        }
        if (Date.now() - t0 > 30_000) break
        await new Promise((r) => setTimeout(r, 10))
      }
      await new Promise((r) => setTimeout(r, Math.max(0, t0 + o.windowS * 1000 - Date.now())))
      const [w] = await sabt.sql<{ c: number; span: number }>(
        `SELECT count(*)::int AS c, extract(epoch FROM now() - $1::timestamptz)::float8 AS span
         FROM citizen_messages WHERE kind = 'receipt' AND state = 'sent' AND sent_at > $1`,
        [from],
      )
      return w!
    },
  )
  const stats = (await (
    await fetch(`http://127.0.0.1:${simPort}/admin/stats`, {
      headers: { authorization: `Bearer ${env.SABT_ADMIN_TOKEN}` },
    })
  ).json()) as Record<string, { rate_limited?: number }>
  const perS = m.result.c / m.result.span
  const r: Run = {
    rate: o.rate,
    run: o.run,
    backlog: o.n,
    window_s: Math.round(m.result.span * 10) / 10,
    sent: m.result.c,
    per_s: Math.round(perS * 10) / 10,
    share: perS / o.rate,
    rate_limited: stats.sms?.rate_limited ?? Number.NaN,
    otp_ms: otpMs,
    owed_at_otp: owed,
    cpu: cpuPct(m),
  }
  ctx.log(
    `  sms ${o.rate}/s run ${o.run}: ${r.per_s} receipts/s (${Math.round(r.share * 100)} % of the limit) over ${r.window_s} s, ${r.rate_limited} × 429; one-time code after ${otpMs} ms with ${owed} receipts owed; cpu% ${JSON.stringify(r.cpu)}`,
  )
  return r
}
