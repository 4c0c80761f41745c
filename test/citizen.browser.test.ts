import { existsSync, mkdirSync } from 'node:fs'
import { type Browser, chromium } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { showTrackingCode } from '../src/db/citizen.js'
import { type ChecksSystem, startChecksSystem } from './support/checks.js'
import { nationalId, sql, waitFor } from './support/harness.js'

/**
 * The citizen page (issue 14 item 4) in Debian's chromium: register through the proof-of-work
 * gate, see the tracking code, look the registration up with the one-time code sent by SMS.
 * Screenshots go to test-results/citizen/.
 */
const CHROMIUM = process.env.SABT_CHROMIUM ?? '/usr/bin/chromium'
const SHOTS = 'test-results/citizen'
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
]

describe('citizen page in a browser', () => {
  let s: ChecksSystem
  let browser: Browser
  let base: string
  const missing = existsSync(CHROMIUM)
    ? null
    : `Chromium is not installed at ${CHROMIUM} (scripts/ci-packages.sh)`

  beforeAll(async () => {
    if (missing) return
    mkdirSync(SHOTS, { recursive: true })
    s = await startChecksSystem({
      listen: true,
      sms: {},
      campaigns: { demo: { title: 'پیش‌ثبت‌نام نمونه', proof_of_work: { max_number: 20_000 } } },
      env: { SABT_SMS_SWEEP_MS: '100', SABT_POW_SECRET: 'a-test-secret-of-some-length' },
    })
    base = s.sabt.url!.replace('0.0.0.0', '127.0.0.1')
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true })
  }, 60_000)

  afterAll(async () => {
    await browser?.close()
    await s?.cleanup()
  })

  it('registers through the proof of work, shows the tracking code, and looks it up with the SMS code', async () => {
    if (missing) throw new Error(missing)
    const page = await browser.newPage({ viewport: { width: 390, height: 844 } }) // a phone
    const person = { national_id: nationalId(), mobile: '09121112233' }
    await page.goto(`${base}/citizen/?campaign=demo`)
    expect(await page.getAttribute('html', 'dir')).toBe('rtl')
    await waitFor(async () => (await page.textContent('#title')) === 'پیش‌ثبت‌نام نمونه', 'the title')
    await page.fill('#register [name=national_id]', person.national_id)
    await page.fill('#register [name=mobile]', person.mobile)
    await page.fill('#register [name=first_name]', 'مریم')
    await page.fill('#register [name=last_name]', 'احمدی')
    await page.fill('#register [name=birth_date]', '1992-05-04')
    await page.screenshot({ path: `${SHOTS}/1-form.png`, fullPage: true })
    await page.click('#register-button')
    await waitFor(
      async () => /^[0-9A-Z]{4}-[0-9A-Z]{4}$/.test((await page.textContent('#tracking-code')) ?? ''),
      'the tracking code on the page',
      30_000,
      100,
    )
    const shown = (await page.textContent('#tracking-code'))!
    const stored = await sql<{ code: string; id: string }>(
      s.sabt.env.DATABASE_URL,
      'SELECT code, registration_id::text AS id FROM tracking_codes',
    )
    expect(stored).toHaveLength(1)
    expect(shown).toBe(showTrackingCode(stored[0]!.code))
    await page.screenshot({ path: `${SHOTS}/2-tracking-code.png`, fullPage: true })
    // The receipt SMS carries the same code.
    const receipt = await waitFor(
      () => s.sim.sms.delivered.get(`receipt:${stored[0]!.id}`),
      'the receipt SMS',
    )
    expect(receipt.text).toContain(shown)

    // The lookup, from a fresh page.
    const look = await browser.newPage({ viewport: { width: 390, height: 844 } })
    await look.goto(`${base}/citizen/?campaign=demo`)
    await look.fill('#lookup [name=national_id]', person.national_id)
    await look.fill('#lookup [name=mobile]', person.mobile)
    await look.click('#lookup-button')
    await look.waitForSelector('#verify:not([hidden])')
    const otp = await waitFor(
      () => [...s.sim.sms.delivered.values()].find((d) => d.reference.startsWith('otp:')),
      'the one-time code',
    )
    await look.fill('#verify [name=code]', /([0-9]{6})/.exec(otp.text)![1]!)
    await look.click('#verify-button')
    await look.waitForSelector('#lookup-result:not([hidden])')
    expect(await look.textContent('#lookup-code')).toBe(shown)
    expect(await look.textContent('#lookup-status')).toBe('پذیرفته شد')
    await look.screenshot({ path: `${SHOTS}/3-lookup.png`, fullPage: true })
    console.log(`citizen page: screenshots in ${SHOTS}/ (form, tracking code ${shown}, lookup)`)
  })

  it('says "try again in N s" when the intake answers 503', async () => {
    if (missing) throw new Error(missing)
    const page = await browser.newPage({ viewport: { width: 390, height: 844 } })
    await page.route('**/v1/registrations', (route) =>
      route.fulfill({
        status: 503,
        headers: { 'retry-after': '7', 'content-type': 'application/json' },
        body: JSON.stringify({
          statusCode: 503,
          code: 'SABT_QUEUE_FULL',
          message: 'Intake is full; retry later',
        }),
      }),
    )
    await page.goto(`${base}/citizen/?campaign=demo`)
    await page.fill('#register [name=national_id]', nationalId())
    await page.fill('#register [name=mobile]', '09121112234')
    await page.fill('#register [name=first_name]', 'مریم')
    await page.fill('#register [name=last_name]', 'احمدی')
    await page.fill('#register [name=birth_date]', '1992-05-04')
    await page.click('#register-button')
    await waitFor(
      async () => ((await page.textContent('#register-message')) ?? '').includes('ثانیه'),
      'the retry message',
    )
    expect(await page.textContent('#register-message')).toMatch(/[۰-۹]+ ثانیه دیگر دوباره تلاش کنید/)
    expect(await page.isDisabled('#register-button')).toBe(true)
    await page.screenshot({ path: `${SHOTS}/4-retry-after.png`, fullPage: true })
  })
})
