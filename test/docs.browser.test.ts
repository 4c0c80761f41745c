import { existsSync, mkdirSync } from 'node:fs'
import { chromium } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DOCS_CSP } from '../src/http/api-docs.js'
import { startTestSabt, type TestSabt } from './support/harness.js'

// Issue 17 item 2: /docs (Swagger UI) on the dashboard's origin, under a strict CSP — and still working.
const CHROMIUM = process.env.SABT_CHROMIUM ?? '/usr/bin/chromium'

describe('/docs under a Content-Security-Policy', () => {
  let sabt: TestSabt
  beforeAll(async () => {
    sabt = await startTestSabt({ roles: ['gateway', 'status'], listen: true })
  })
  afterAll(async () => {
    await sabt?.cleanup()
  })

  it('sends the strict policy on the page and its assets: no inline script, no eval, no framing, no third party', async () => {
    for (const url of ['/docs/', '/docs/static/swagger-initializer.js', '/docs/json']) {
      const res = await sabt.app.inject({ method: 'GET', url })
      expect({ url, status: res.statusCode }).toEqual({ url, status: 200 })
      const csp = String(res.headers['content-security-policy'])
      expect(csp).toBe(DOCS_CSP)
      expect(res.headers['x-frame-options']).toBe('DENY')
    }
    expect(DOCS_CSP).toContain("script-src 'self';")
    expect(DOCS_CSP).toContain("frame-ancestors 'none'")
    expect(DOCS_CSP).not.toMatch(/unsafe-eval|script-src[^;]*unsafe-inline|https:|\*/)
  })

  it('renders every operation in Chromium with no policy violation', async () => {
    if (!existsSync(CHROMIUM))
      throw new Error(
        `Chromium is not installed at ${CHROMIUM}: apt-get install -y chromium (scripts/ci-packages.sh)`,
      )
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--no-first-run',
        '--disable-background-networking',
      ],
      headless: true,
    })
    try {
      const page = await browser.newPage()
      const violations: string[] = []
      page.on('console', (m) => {
        if (/Content Security Policy|Refused to/i.test(m.text())) violations.push(m.text())
      })
      const base = sabt.url!.replace('0.0.0.0', '127.0.0.1')
      await page.goto(`${base}/docs/`)
      await page.waitForSelector('.opblock', { timeout: 20_000 })
      const operations = await page.locator('.opblock').count()
      expect(operations).toBeGreaterThanOrEqual(5)
      expect(await page.textContent('.opblock-summary-path >> nth=0')).toMatch(/^\//)
      mkdirSync('test-results', { recursive: true })
      await page.screenshot({ path: 'test-results/docs.png' })
      expect(violations).toEqual([])
    } finally {
      await browser.close()
    }
  })
})
