import { v7 as uuidv7 } from 'uuid'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { lookupRegistration } from '../src/operations/index.js'
import { expectedVerdict, identityMatches } from '../src/roles/simulator/answers.js'
import { type ChecksSystem, startChecksSystem } from './support/checks.js'
import { registration, waitFor } from './support/harness.js'

// The status API answers anyone holding a registration id: it must not tell a stranger who
// submitted someone's national id whether, and how, that person registered.
describe('public status of a registration', () => {
  let s: ChecksSystem
  beforeAll(async () => {
    s = await startChecksSystem({
      checks: {
        eligibility: { max_attempts: 2, breaker: { consecutive_failures: 1000, half_open_after_ms: 1000 } },
      },
      campaigns: { demo: { title: 'Demo', checks: ['identity', 'eligibility'] } },
    })
  })
  afterAll(async () => {
    await s?.cleanup()
  })
  const submit = async (reg: Record<string, unknown>): Promise<string> =>
    (await s.sabt.app.inject({ method: 'POST', url: '/v1/registrations', payload: reg })).json<{
      id: string
    }>().id
  const get = (id: string) => s.sabt.app.inject({ method: 'GET', url: `/v1/registrations/${id}` })
  const settled = (id: string) =>
    waitFor(async () => {
      const r = await get(id)
      const st = r.json<{ status: string }>().status
      return ['accepted', 'rejected', 'failed', 'duplicate'].includes(st) && r
    }, `${id} settled`)

  it("shows a duplicate as a duplicate and nothing of the person's other registration", async () => {
    // Someone the providers accept: had they been rejected, the stranger's submission would take
    // their place and be checked itself (decision 015), not be a duplicate.
    let victim = registration()
    while (expectedVerdict(victim as never, ['identity', 'eligibility']) !== 'accepted')
      victim = registration()
    const original = await submit(victim)
    await settled(original)
    // A stranger submits the same national id with made-up details, then reads their own status.
    const probe = await submit({ ...victim, first_name: 'غریبه', mobile: '09120000001' })
    const res = await settled(probe)
    const body = res.json()
    expect(body).toEqual({
      id: probe,
      campaign: 'demo',
      status: 'duplicate',
      received_at: expect.any(String),
      recorded_at: expect.any(String),
    })
    expect(res.body).not.toContain(original)
    // Operators still see which record it repeats.
    const full = await lookupRegistration(s.sabt.pool!, s.sabt.config, probe, 600_000)
    expect(full).toMatchObject({ kind: 'duplicate', original_id: original })
  })

  it("shows a record's own status and, per check, only where it stands", async () => {
    const id = await submit(registration())
    const res = await settled(id)
    const body = res.json<{ checks: Record<string, unknown>[] }>()
    expect(Object.keys(body).sort()).toEqual(
      ['campaign', 'checks', 'id', 'received_at', 'recorded_at', 'status', 'verdict_at'].sort(),
    )
    expect(body.checks.map((c) => c.check)).toEqual(['identity', 'eligibility'])
    for (const c of body.checks) {
      // A failed check also says why (its reason code and the provider's words: issue 15).
      expect(Object.keys(c).sort()).toEqual(
        c.outcome === 'failed' ? ['check', 'outcome', 'reason'] : ['check', 'outcome'],
      )
      expect(['pending', 'passed', 'failed', 'skipped']).toContain(c.outcome)
    }
    // Attempts, latencies and provider errors stay with the operators.
    const full = await lookupRegistration(s.sabt.pool!, s.sabt.config, id, 600_000)
    expect(full.kind === 'record' && full.checks[0]!.attempts).toBeGreaterThanOrEqual(1)
  })

  it('shows a dead-lettered check as pending, without its error', async () => {
    await s.knobs('eligibility', { error_rate: 1 })
    try {
      // Someone the civil registry knows: the record ends failed on eligibility, not rejected.
      let reg = registration()
      while (!identityMatches(reg as never)) reg = registration()
      const id = await submit(reg)
      const res = await settled(id)
      expect(res.json()).toMatchObject({
        status: 'failed',
        checks: [
          { check: 'identity', outcome: 'passed' },
          { check: 'eligibility', outcome: 'pending' },
        ],
      })
      expect(res.body).not.toContain('provider answered')
      expect(res.body).not.toContain('last_error')
      expect(res.body).not.toContain('attempts')
    } finally {
      await s.knobs('eligibility', { error_rate: 0 })
    }
  })

  it('marks every answer no-store and nosniff, errors included', async () => {
    const id = await submit(registration())
    const answers = [
      await settled(id),
      await get(uuidv7()), // 202 queued
      await get(uuidv7({ msecs: Date.now() - 3_600_000 })), // 404
      await get('not-an-id'), // 400
    ]
    expect(answers.map((r) => r.statusCode)).toEqual([200, 202, 404, 400])
    for (const r of answers) {
      expect(r.headers['cache-control']).toBe('no-store')
      expect(r.headers['x-content-type-options']).toBe('nosniff')
    }
  })

  it('documents only what it shows in the OpenAPI schema', async () => {
    const doc = (await s.sabt.app.inject({ method: 'GET', url: '/openapi.json' })).json()
    const schema = doc.paths['/v1/registrations/{id}'].get.responses['200'].content['application/json'].schema
    const props = Object.keys(schema.properties)
    expect(props).not.toContain('original_id')
    expect(Object.keys(schema.properties.checks.items.properties).sort()).toEqual([
      'check',
      'outcome',
      'reason',
    ]) // reason: why a failed check said no (issue 15)
    expect(JSON.stringify(schema.properties.status)).toContain('waiting')
  })
})
