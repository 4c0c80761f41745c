import { once } from 'node:events'
import { existsSync, mkdirSync } from 'node:fs'
import { createServer } from 'node:http'
import { type Browser, chromium } from 'playwright-core'
import { afterAll, describe, expect, it } from 'vitest'
import { identityReason } from '../src/roles/simulator/answers.js'
import { type ChecksSystem, startChecksSystem } from './support/checks.js'
import { registration, waitFor } from './support/harness.js'

/**
 * A rejected registration says why everywhere a "no" is shown: the status API, the verdict
 * callback, the dashboard's lookup, and the campaign's "top rejection reasons" panel (count and
 * share) — in a real browser (Debian's chromium, as test/dashboard.browser.test.ts runs it).
 */
const CHROMIUM = process.env.SABT_CHROMIUM ?? '/usr/bin/chromium'
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
]

describe('reasons for a "no"', () => {
  let s: ChecksSystem | null = null
  let browser: Browser | null = null
  const receiver = createServer((req, res) => {
    let b = ''
    req.on('data', (c) => (b += c))
    req.on('end', () => {
      callbacks.push(JSON.parse(b) as { id: string; reasons: unknown[] })
      res.writeHead(204).end()
    })
  })
  const callbacks: { id: string; reasons: unknown[] }[] = []
  afterAll(async () => {
    await browser?.close()
    await s?.cleanup()
    receiver.close()
  })

  it('a rejected registration shows its reason in the status API, the callback, the dashboard lookup and the reasons panel', async () => {
    if (!existsSync(CHROMIUM))
      throw new Error(`Chromium is not installed at ${CHROMIUM}: install it with scripts/ci-packages.sh`)
    mkdirSync('test-results/dashboard', { recursive: true })
    receiver.listen(0, '127.0.0.1')
    await once(receiver, 'listening')
    const cbPort = (receiver.address() as { port: number }).port
    s = await startChecksSystem({
      listen: true,
      knobs: { identity: { fail_percent: 100 } }, // every identity check says no, with a reason
      campaigns: {
        demo: { title: 'Demo', checks: ['identity'], callback_url: `http://127.0.0.1:${cbPort}/verdicts` },
      },
    })
    const base = s.sabt.url!.replace('0.0.0.0', '127.0.0.1')
    const regs = Array.from({ length: 8 }, () => registration() as Record<string, string>)
    const ids: string[] = []
    for (const r of regs) {
      const res = await fetch(`${base}/v1/registrations`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(r),
      })
      expect(res.status).toBe(202)
      ids.push(((await res.json()) as { id: string }).id)
    }
    const want = regs.map((r) => identityReason(r as never))

    // The status API.
    const status = async (id: string) =>
      (await (await fetch(`${base}/v1/registrations/${id}`)).json()) as {
        status: string
        checks: { check: string; outcome: string; reason?: { code: string; text: string } }[]
      }
    await waitFor(async () => (await status(ids.at(-1)!)).status === 'rejected', 'the last verdict')
    for (const [i, id] of ids.entries()) {
      const st = await status(id)
      expect(st.status).toBe('rejected')
      expect(st.checks).toEqual([
        {
          check: 'identity',
          outcome: 'failed',
          reason: { code: want[i]!.code, text: want[i]!.text },
        },
      ])
    }

    // The callback.
    await waitFor(() => callbacks.length === ids.length, 'every callback')
    const cb = callbacks.find((c) => c.id === ids[0])!
    expect(cb.reasons).toEqual([{ check: 'identity', code: want[0]!.code, text: want[0]!.text }])

    // The dashboard.
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true })
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } })
    await page.goto(`${base}/dashboard/login`)
    await page.fill('#token', s.adminToken)
    await Promise.all([page.waitForURL(`${base}/dashboard`), page.click('button[type=submit]')])

    // The panel: every reason of the campaign, its count and its share, last hour and all time.
    const expected = new Map<string, number>()
    for (const w of want) expected.set(w.code, (expected.get(w.code) ?? 0) + 1)
    await page.waitForSelector('#reasons table.reasons[data-campaign="demo"]')
    for (const [code, n] of expected) {
      const row = `#reasons table[data-campaign="demo"] tr[data-check="identity"][data-reason="${code}"]`
      expect(await page.textContent(`${row} td[data-col="total"]`)).toBe(String(n))
      expect(await page.textContent(`${row} td[data-col="hour"]`)).toBe(String(n))
      const share = `${((n / ids.length) * 100).toFixed(n / ids.length < 0.1 ? 1 : 0)} %`
      expect(await page.textContent(`${row} td[data-col="total-share"]`)).toBe(share)
      expect(await page.textContent(`${row} td[data-col="hour-share"]`)).toBe(share)
    }
    // Codes only in the panel: the providers' words stay with one registration's lookup.
    expect(await page.textContent('#reasons')).not.toContain(want[0]!.text)

    // The lookup of one rejected registration: its reason code and the provider's words.
    await page.fill('#lookup-q', ids[0]!)
    await page.click('#lookup-form button[type=submit]')
    const cell = `#lookup-result article[data-id="${ids[0]}"] tr[data-check="identity"] td.reason`
    await page.waitForSelector(cell)
    expect(await page.textContent(`${cell} [data-reason]`)).toBe(want[0]!.code)
    expect(await page.textContent(cell)).toContain(want[0]!.text)
    await page.screenshot({ path: 'test-results/dashboard/reasons.png', fullPage: true })
  })
})
