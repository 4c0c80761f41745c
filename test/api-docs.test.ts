import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ERRORS, errorCatalogueMarkdown } from '../src/http/errors.js'
import { startTestSabt, type TestSabt } from './support/harness.js'

describe('API documentation is generated from the route schemas', () => {
  let sabt: TestSabt
  beforeAll(async () => {
    sabt = await startTestSabt({ roles: ['gateway', 'status'] })
  })
  afterAll(async () => {
    await sabt?.cleanup()
  })

  it('serves an OpenAPI 3 document with the intake and status routes and their schemas', async () => {
    const res = await sabt.app.inject({ method: 'GET', url: '/openapi.json' })
    expect(res.statusCode).toBe(200)
    const doc = res.json()
    expect(doc.openapi).toMatch(/^3\./)
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/v1/registrations',
        '/v1/registrations/batch',
        '/v1/registrations/{id}',
        '/healthz',
        '/readyz',
      ]),
    )
    const post = doc.paths['/v1/registrations'].post
    expect(Object.keys(post.responses)).toEqual(
      expect.arrayContaining(['202', '400', '413', '415', '422', '503']),
    )
    const schema = JSON.stringify(doc)
    expect(schema).toContain('national_id')
    expect(schema).toContain('"additionalProperties":false')
    for (const code of Object.keys(ERRORS)) expect(doc.info.description).toContain(code)
  })

  it("is accepted by a partner's tooling: Redocly's recommended rules find no error, and every operation has an operationId", async () => {
    const res = await sabt.app.inject({ method: 'GET', url: '/openapi.json' })
    const doc = res.json()
    const operations = Object.entries(
      doc.paths as Record<string, Record<string, { operationId?: string }>>,
    ).flatMap(([path, ops]) =>
      Object.entries(ops).map(([method, op]) => ({ path, method, operationId: op.operationId })),
    )
    expect(operations.filter((o) => !o.operationId)).toEqual([])
    expect(new Set(operations.map((o) => o.operationId)).size).toBe(operations.length)
    const dir = mkdtempSync(join(tmpdir(), 'sabt-openapi-'))
    try {
      const file = join(dir, 'openapi.json')
      writeFileSync(file, res.body)
      // Exit status 1 means errors were found: read the report either way.
      const out = await promisify(execFile)('node_modules/.bin/redocly', ['lint', file, '--format', 'json'], {
        env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
      }).catch((e: { stdout: string }) => e)
      const report = JSON.parse(out.stdout) as {
        totals: { errors: number }
        problems: { ruleId: string; location: { pointer: string }[] }[]
      }
      expect(report.totals.errors).toBe(0)
      // The only warnings left: the health probes answer 200/503 and nothing in between.
      expect(report.problems.map((p) => `${p.ruleId} ${p.location[0]?.pointer}`).sort()).toEqual([
        'operation-4xx-response #/paths/~1healthz/get/responses',
        'operation-4xx-response #/paths/~1readyz/get/responses',
      ])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }, 30_000)

  it('serves a docs page', async () => {
    const res = await sabt.app.inject({ method: 'GET', url: '/docs/' })
    expect(res.statusCode).toBe(200)
    expect(res.headers['content-type']).toMatch(/text\/html/)
  })

  it('keeps docs/api-errors.md in step with the error catalogue', () => {
    const rows = (md: string) =>
      md
        .split('\n')
        .filter((l) => l.startsWith('| `'))
        .map((l) =>
          l
            .split('|')
            .slice(1, -1)
            .map((c) => c.trim()),
        )
    const documented = rows(readFileSync('docs/api-errors.md', 'utf8'))
    expect(documented).toEqual(rows(errorCatalogueMarkdown()))
    expect(documented.length).toBe(Object.keys(ERRORS).length)
  })
})
