import { describe, expect, it } from 'vitest'
import { buildConfig, defaultConfigPath, loadConfigFile } from './campaigns.js'
import { BUILTIN_PROVIDERS, compileProviders, normaliseReason } from './providers.js'

const doc = (providers: Record<string, unknown>, provider = 'registry') => ({
  providers,
  checks: { identity: { provider, url: 'http://127.0.0.1:9/x' } },
  campaigns: { demo: { title: 'Demo', checks: ['identity'] } },
})

async function compiled(providers: Record<string, unknown>) {
  const c = buildConfig(doc(providers))
  return compileProviders(c.providers, ['registry'], c.baseDir)
}

describe('provider definitions', () => {
  it('the shipped configuration spells out the built-in providers exactly', () => {
    const shipped = loadConfigFile(defaultConfigPath(), {})
    for (const [name, def] of Object.entries(BUILTIN_PROVIDERS))
      expect(shipped.providers.get(name), name).toEqual(def)
  })

  it('maps a nested answer to outcome, reason and text', async () => {
    const p = (
      await compiled({
        registry: {
          fields: ['national_id'],
          body: '{"person": {"nid": national_id}}',
          answer: {
            outcome: 'data.result = "MATCH" ? "passed" : data.result = "NO_MATCH" ? "failed"',
            reason: 'data.reason.code',
            text: 'data.reason.description',
          },
          samples: [{ answer: { data: { result: 'MATCH' } }, outcome: 'passed' }],
        },
      })
    ).get('registry')!
    expect(await p.buildRequest({ national_id: '0012345679' })).toEqual({ person: { nid: '0012345679' } })
    expect(
      await p.readAnswer(
        { data: { result: 'NO_MATCH', reason: { code: 'NOT-FOUND', description: 'No one' } } },
        200,
      ),
    ).toEqual({ outcome: 'failed', reason: 'not-found', text: 'No one' })
    expect(await p.readAnswer({ data: { result: 'MAYBE' } }, 200)).toBeNull()
    expect(await p.readAnswer(null, 200)).toBeNull()
    expect(p.needs).toEqual(['national_id'])
  })

  it('a sample answer that maps wrongly stops the start, naming the key', async () => {
    await expect(
      compiled({
        registry: {
          fields: ['national_id'],
          answer: { outcome: 'ok ? "passed" : "failed"', reason: 'code' },
          samples: [
            { answer: { ok: true }, outcome: 'passed' },
            { answer: { ok: false, code: 'gone' }, outcome: 'failed', reason: 'deceased' },
          ],
        },
      }),
    ).rejects.toThrow(
      /providers\.registry\.samples\.1: .* maps to failed \(gone\), the sample says failed \(deceased\)/,
    )
  })

  it('an expression that does not parse is named by its key', async () => {
    await expect(
      compiled({ registry: { fields: ['national_id'], answer: { outcome: 'match = ? "passed"' } } }),
    ).rejects.toThrow(/providers\.registry\.answer\.outcome: not a JSONata expression/)
  })

  it('a check naming an undefined provider is refused at load', () => {
    expect(() => buildConfig(doc({}, 'nosuch'))).toThrow(
      /checks\.identity\.provider: no provider named nosuch/,
    )
  })

  it('loads a provider module (a path relative to the configuration file) and checks its samples too', async () => {
    const dir = new URL('../../test/fixtures/providers/', import.meta.url).pathname
    const c = buildConfig(
      doc({
        registry: {
          module: './legacy.mjs',
          samples: [
            { answer: { ok: true }, outcome: 'passed' },
            { answer: { ok: false, code: 'GONE' }, outcome: 'failed', reason: 'gone' },
            { answer: {}, outcome: 'unreadable' },
          ],
        },
      }),
      {},
      dir,
    )
    const p = (await compileProviders(c.providers, ['registry'], c.baseDir)).get('registry')!
    expect(p.needs).toEqual(['national_id'])
    expect(await p.buildRequest({ national_id: '0012345679' })).toEqual({ envelope: { nid: '0012345679' } })
    expect(await p.readAnswer({ ok: false, code: 'GONE', why: 'moved' }, 200)).toEqual({
      outcome: 'failed',
      reason: 'gone',
      text: 'moved',
    })
    expect(p.extraHeaders?.('abc', { method: 'POST', path: '/' })).toEqual({ 'x-body-length': '3' })
    const wrong = buildConfig(
      doc({ registry: { module: './legacy.mjs', samples: [{ answer: { ok: true }, outcome: 'failed' }] } }),
      {},
      dir,
    )
    await expect(compileProviders(wrong.providers, ['registry'], wrong.baseDir)).rejects.toThrow(
      /providers\.registry\.samples\.0: .* maps to passed, the sample says failed/,
    )
    const missing = buildConfig(doc({ registry: { module: './nope.mjs' } }), {}, dir)
    await expect(compileProviders(missing.providers, ['registry'], missing.baseDir)).rejects.toThrow(
      /providers\.registry\.module: cannot load/,
    )
  })

  it('reason codes are normalised; anything else is no code', () => {
    expect(normaliseReason('NOT_FOUND')).toBe('not_found')
    expect(normaliseReason('Name Mismatch')).toBe('name_mismatch')
    expect(normaliseReason({})).toBeNull()
    expect(normaliseReason('')).toBeNull()
  })
})
