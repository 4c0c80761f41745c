import { existsSync, mkdirSync } from 'node:fs'
import { type Browser, chromium, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type ChecksSystem, startChecksSystem } from './support/checks.js'
import { registration, waitFor } from './support/harness.js'

/**
 * The operator's view, in a real browser: Debian's chromium driven by playwright-core, against the
 * whole pipeline (gateway, recorder, checker, status) and the provider simulator on real ports,
 * under a light, steady load. Screenshots go to test-results/dashboard/ (CI keeps them).
 */
const CHROMIUM = process.env.SABT_CHROMIUM ?? '/usr/bin/chromium'
const SHOTS = 'test-results/dashboard'
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]

describe('dashboard in a browser', () => {
  let s: ChecksSystem
  let browser: Browser
  let page: Page
  let base: string
  let load: { stop(): Promise<number> } | null = null
  const submitted: { id: string; reg: Record<string, string> }[] = []

  async function submit(
    overrides: Record<string, unknown> = {},
  ): Promise<{ id: string; reg: Record<string, string> }> {
    const reg = registration(overrides) as Record<string, string>
    const res = await fetch(`${base}/v1/registrations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(reg),
    })
    const body = (await res.json()) as { id: string }
    expect(res.status).toBe(202)
    const one = { id: body.id, reg }
    submitted.push(one)
    return one
  }

  /** A light, steady load: one registration every 100 ms, bounded in count and time. */
  function startLoad(max = 600): { stop(): Promise<number> } {
    let running = true
    let n = 0
    const done = (async () => {
      while (running && n < max) {
        await submit().catch(() => {})
        n++
        await new Promise((r) => setTimeout(r, 100))
      }
    })()
    return {
      stop: async () => {
        running = false
        await done
        return n
      },
    }
  }

  const shot = (name: string) => page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true })

  // Missing Chromium fails the test (not a skip): CI installs it with scripts/ci-packages.sh.
  const missing = existsSync(CHROMIUM)
    ? null
    : `Chromium is not installed at ${CHROMIUM}: the dashboard's browser test needs it. Install it with scripts/ci-packages.sh (apt-get install -y chromium), as CI does.`

  beforeAll(async () => {
    if (missing) return
    mkdirSync(SHOTS, { recursive: true })
    s = await startChecksSystem({
      listen: true,
      checks: {
        eligibility: { max_attempts: 2, breaker: { consecutive_failures: 1000, half_open_after_ms: 1000 } },
      },
      campaigns: {
        demo: { title: 'Demo', checks: ['identity', { name: 'mobile', after: ['identity'] }, 'eligibility'] },
      },
    })
    base = s.sabt.url!.replace('0.0.0.0', '127.0.0.1')
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true })
    page = await browser.newPage({ viewport: { width: 1400, height: 1000 } })
    page.on('dialog', (d) => {
      void d.accept()
    })
  }, 60_000)

  afterAll(async () => {
    await load?.stop()
    await browser?.close()
    await s?.cleanup()
  })

  it('signs in with the admin token, shows live charts, finds registrations, and replays dead letters by a click', async () => {
    if (missing) throw new Error(missing)
    load = startLoad()
    await waitFor(() => submitted.length >= 5, 'some load')

    // Not signed in: the page sends us to the login form; a wrong token is refused.
    await page.goto(`${base}/dashboard`)
    expect(new URL(page.url()).pathname).toBe('/dashboard/login')
    await page.fill('#token', 'not-the-token-at-all')
    await page.click('button[type=submit]')
    await expect.poll(() => page.textContent('.error')).toContain('Wrong token')
    await shot('01-login-refused')
    await page.fill('#token', s.adminToken)
    await Promise.all([page.waitForURL(`${base}/dashboard`), page.click('button[type=submit]')])
    const cookie = (await page.context().cookies()).find((c) => c.name === 'sabt_admin')
    // Secure (SABT_COOKIE_SECURE's default), and still taken over plain HTTP on 127.0.0.1: the quick start works.
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Strict', secure: true })
    expect(cookie!.value).not.toContain(s.adminToken)

    // The charts update: new points arrive, the newest one moves on, and the intake rate shows traffic.
    const read = async () => ({
      points: Number(await page.getAttribute('#charts', 'data-points')),
      last: Number(await page.getAttribute('#charts', 'data-last')),
      accepted: await page.textContent('#now-accepted'),
    })
    await waitFor(async () => (await read()).points >= 3, 'chart points')
    const first = await read()
    await waitFor(async () => (await read()).last > first.last, 'a newer chart point', 10_000)
    const second = await read()
    expect(second.points).toBeGreaterThan(first.points)
    await waitFor(async () => Number((await read()).accepted) > 0, 'a non-zero accepted rate')
    // …and the tables fill in: every queue, every provider with latency, counts from PostgreSQL.
    await waitFor(async () => (await page.$$('#queues tr[data-queue]')).length >= 10, 'queue rows')
    await waitFor(async () => {
      const t = await page.textContent('#providers tr[data-check="identity"]')
      return t?.includes('ms') && t.includes('closed')
    }, 'identity latency and circuit')
    await waitFor(
      async () =>
        Number((await page.textContent('#counts td[data-status="accepted"]'))?.replace(/,/g, '')) > 0,
      'accepted registrations counted',
    )
    await shot('02-live')

    // Find a registration by id: its status, checks, and the Persian name shown as written.
    const persian = await submit({ first_name: 'فاطمه', last_name: 'حسینی‌نژاد' })
    await waitFor(async () => {
      await page.fill('#lookup-q', persian.id)
      await page.click('#lookup-form button')
      await page.waitForSelector('#lookup-result article.record, #lookup-result .notice')
      return page.$(`#lookup-result article.record[data-id="${persian.id}"]`)
    }, 'the registration recorded and found')
    const name = await page.textContent(`#lookup-result article.record[data-id="${persian.id}"] bdi.person`)
    expect(name).toContain('فاطمه')
    expect(name).toContain('حسینی‌نژاد')
    const nidShown = await page.textContent('#lookup-result [data-field="national_id"]')
    expect(nidShown).not.toBe(persian.reg.national_id)
    expect(nidShown).toMatch(/^\d{2}\*{6}\d{2}$/)
    await shot('03-lookup-by-id')

    // …and by national id: the searched one in full, the mobile masked.
    await page.fill('#lookup-q', persian.reg.national_id!)
    await page.click('#lookup-form button')
    // The lookup by id left the same record on the page (masked): wait for the new answer itself.
    await page
      .waitForFunction(
        // A function, not a string: the dashboard's CSP allows no eval. (No DOM types here.)
        (nid: string) =>
          (
            globalThis as unknown as {
              document: { querySelector(s: string): { textContent: string | null } | null }
            }
          ).document.querySelector('#lookup-result [data-field="national_id"]')?.textContent === nid,
        persian.reg.national_id!,
        { timeout: 10_000 },
      )
      .catch(() => {}) // the expect below says what was shown instead
    expect(await page.textContent('#lookup-result [data-field="national_id"]')).toBe(persian.reg.national_id)
    expect(await page.textContent('#lookup-result [data-field="mobile"]')).toMatch(/^09\*{7}\d{2}$/)
    await shot('04-lookup-by-national-id')

    // Right to left: names isolated in their own direction; the whole page flips on request.
    expect(await page.getAttribute('#lookup-result bdi.person', 'dir')).toBe('auto')
    expect(await page.evaluate("getComputedStyle(document.querySelector('bdi.person')).unicodeBidi")).toBe(
      'plaintext',
    )
    await page.click('#dir-toggle')
    expect(await page.getAttribute('html', 'dir')).toBe('rtl')
    await shot('04b-right-to-left')
    await page.click('#dir-toggle')
    expect(await page.getAttribute('html', 'dir')).toBe('ltr')

    // A provider that always fails: its checks end in the dead letters, and the page shows them.
    await s.knobs('eligibility', { error_rate: 1 })
    const deadTotal = async () => Number(await page.getAttribute('#dead-total', 'data-total'))
    await waitFor(async () => (await deadTotal()) >= 3, 'dead letters on the page', 30_000)
    await waitFor(
      async () =>
        Number(await page.textContent('#queues tr[data-queue="dead letters"] td[data-col="messages"]')) > 0,
      'the dead-letter queue depth',
    )
    await shot('05-dead-letters')

    // Fix the provider, click replay, and watch the count go down.
    await load.stop()
    await s.knobs('eligibility', { error_rate: 0 })
    const before = await deadTotal()
    await page.click('#dead button.replay[data-check="eligibility"]')
    await waitFor(
      async () => (await page.textContent('#dead-note'))?.includes('Replayed'),
      'the replay notice',
    )
    await waitFor(async () => (await deadTotal()) < before, 'the dead count to go down')
    await waitFor(async () => (await deadTotal()) === 0, 'no dead letters left', 30_000)
    await shot('06-replayed')
  })
})
