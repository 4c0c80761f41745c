import { readFileSync } from 'node:fs'
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
