import { createHmac, randomBytes } from 'node:crypto'
import { createChallenge, solveChallenge, verifySolution } from 'altcha-lib/v1'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { HmacSha256, ProofOfWork } from '../src/http/proof-of-work.js'
import { registration, startTestSabt, type TestSabt, testConfig, testEnv } from './support/harness.js'

type Challenge = { algorithm: string; challenge: string; maxnumber: number; salt: string; signature: string }

async function solve(c: Challenge, number?: number): Promise<string> {
  const found =
    number ?? (await solveChallenge(c.challenge, c.salt, c.algorithm, c.maxnumber).promise)!.number
  return Buffer.from(JSON.stringify({ ...c, number: found, maxnumber: undefined })).toString('base64')
}

/** The proof-of-work gate (issue 14 item 3, decision 021): ALTCHA challenges at the gateway. */
describe('proof-of-work gate', () => {
  let s: TestSabt | null = null
  afterEach(async () => {
    await s?.cleanup()
    s = null
    vi.useRealTimers()
  })
  async function gateway(): Promise<TestSabt> {
    s = await startTestSabt({
      roles: ['gateway'],
      env: testEnv({ SABT_CLIENT_RATE: '0', SABT_POW_SECRET: 'a-test-secret-of-some-length' }),
      config: testConfig({
        campaigns: {
          gated: { title: 'Gated', proof_of_work: { max_number: 5000 } },
          other: { title: 'Other gated', proof_of_work: { max_number: 5000 } },
          open: { title: 'No gate' },
        },
      }),
    })
    return s
  }
  const post = (t: TestSabt, campaign: string, altcha?: string) =>
    t.app.inject({
      method: 'POST',
      url: '/v1/registrations',
      payload: registration({ campaign }),
      headers: altcha ? { 'x-altcha': altcha } : {},
    })
  const challenge = async (t: TestSabt, campaign: string) => {
    const r = await t.app.inject({ method: 'GET', url: `/v1/campaigns/${campaign}/challenge` })
    expect(r.statusCode).toBe(200)
    return r.json<Challenge>()
  }
  const ruleOf = (r: Awaited<ReturnType<typeof post>>) => {
    expect(r.statusCode).toBe(403)
    expect(r.json()).toMatchObject({ code: 'SABT_PROOF_OF_WORK', errors: [{ field: 'x-altcha' }] })
    return r.json<{ errors: { rule: string }[] }>().errors[0]!.rule
  }

  it('refuses a submission without a valid solution, takes a solved one once, refuses its replay', async () => {
    const t = await gateway()
    expect(ruleOf(await post(t, 'gated'))).toBe('proof_of_work.missing')
    expect(ruleOf(await post(t, 'gated', 'not base64 json'))).toBe('proof_of_work.malformed')
    const c = await challenge(t, 'gated')
    expect(c.salt).toContain('campaign=gated')
    const good = await solve(c)
    const wrongNumber = await solve(c, (JSON.parse(Buffer.from(good, 'base64').toString()).number + 1) % 5000)
    expect(ruleOf(await post(t, 'gated', wrongNumber))).toBe('proof_of_work.invalid')
    const forged = Buffer.from(
      JSON.stringify({ ...JSON.parse(Buffer.from(good, 'base64').toString()), signature: 'f'.repeat(64) }),
    ).toString('base64')
    expect(ruleOf(await post(t, 'gated', forged))).toBe('proof_of_work.invalid')
    // A solution of another campaign's challenge does not open this one.
    expect(ruleOf(await post(t, 'gated', await solve(await challenge(t, 'other'))))).toBe(
      'proof_of_work.other_campaign',
    )
    expect((await post(t, 'gated', good)).statusCode).toBe(202)
    expect(ruleOf(await post(t, 'gated', good))).toBe('proof_of_work.replayed')
    // The same solution spelt otherwise is no new solution: its signature in capitals, or a '0'
    // swapped for U+0130 (whose low byte is '0'), is refused, not taken as unspent.
    const spelt = (f: (sig: string) => string) => {
      const o = JSON.parse(Buffer.from(good, 'base64').toString())
      return Buffer.from(JSON.stringify({ ...o, signature: f(o.signature) })).toString('base64')
    }
    expect(
      ruleOf(
        await post(
          t,
          'gated',
          spelt((x) => x.toUpperCase()),
        ),
      ),
    ).toBe('proof_of_work.invalid')
    const sig = JSON.parse(Buffer.from(good, 'base64').toString()).signature as string
    const digit = sig.search(/[0-9]/)
    const lookalike = (x: string) =>
      x.slice(0, digit) + String.fromCharCode(0x100 + x.charCodeAt(digit)) + x.slice(digit + 1)
    expect(ruleOf(await post(t, 'gated', spelt(lookalike)))).toBe('proof_of_work.invalid')
    // No gate, no challenge: the campaign takes submissions as before.
    expect((await post(t, 'open')).statusCode).toBe(202)
    expect((await t.app.inject({ method: 'GET', url: '/v1/campaigns/open/challenge' })).statusCode).toBe(404)
  })

  it('refuses a solution once its challenge has expired (stateless: the expiry is in the signed salt)', async () => {
    const pow = new ProofOfWork('a-test-secret-of-some-length')
    const c = (await pow.challenge('gated', 2000, 10)) as unknown as Challenge
    const payload = await solve({ ...c, maxnumber: 2000 })
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(Date.now() + 11_000)
    expect(await pow.verify('gated', payload)).toMatch(/invalid|expired/)
    vi.useRealTimers()
    expect(await pow.verify('gated', payload)).toBeNull()
    expect(await pow.verify('gated', payload)).toBe('replayed')
    // Another process's key (another secret) never signed it.
    expect(await new ProofOfWork('another-secret-entirely').verify('gated', payload)).toBe('invalid')
  })
  it('checks a turn of the event loop together: each answer its own, a replay in the same turn refused', async () => {
    const pow = new ProofOfWork('a-test-secret-of-some-length')
    const payloads: string[] = []
    for (let i = 0; i < 20; i++) {
      const c = (await pow.challenge('gated', 50, 60)) as unknown as Challenge
      payloads.push(await solve({ ...c, maxnumber: 50 }))
    }
    const forged = Buffer.from('{"algorithm":"SHA-256"}').toString('base64')
    const before = pow.turns
    // One turn: 20 solutions, the first again, one malformed, one for another campaign.
    const answers = await Promise.all([
      ...payloads.map((p) => pow.check('gated', p)),
      pow.check('gated', payloads[0]),
      pow.check('gated', forged),
      pow.check('other', payloads[1]),
    ])
    expect(answers).toEqual([...payloads.map(() => null), 'replayed', 'malformed', 'other_campaign'])
    expect(pow.turns - before).toBe(1) // verified back to back, not one by one
    expect(await pow.check('gated', payloads[2])).toBe('replayed') // and spent
  })

  it("reads the salt's parameters as URLSearchParams does: encoded values, other keys, any order", async () => {
    const key = 'a-test-secret-of-some-length'
    const pow = new ProofOfWork(key)
    const expires = new Date(Date.now() + 60_000)
    const cases: Record<string, string>[] = [
      { campaign: 'a b+c&d=é' },
      { campaignx: 'gated', campaign: 'vaccine_2026-b', xcampaign: 'gated' },
      { expiresx: '1', campaign: 'gated' },
    ]
    for (const params of cases) {
      const c = await createChallenge({ hmacKey: key, maxNumber: 200, expires, params })
      const payload = await solve({ ...c, maxnumber: 200 } as Challenge)
      expect(await pow.verify('gated-other', payload)).toBe('other_campaign')
      expect(await pow.verify(params.campaign!, payload), c.salt).toBeNull()
    }
  })

  it('answers as altcha-lib verifySolution does (the gateway verifies with node:crypto, synchronously)', async () => {
    const key = 'a-test-secret-of-some-length'
    const expires = new Date(Date.now() + 60_000)
    const payloads: string[] = []
    for (let i = 0; i < 40; i++) {
      const c = await createChallenge({
        hmacKey: i % 5 === 4 ? 'not-our-key' : key,
        maxNumber: 200,
        expires,
        params: { campaign: 'gated' },
      })
      const good = JSON.parse(
        Buffer.from(await solve({ ...c, maxnumber: 200 } as Challenge), 'base64').toString(),
      )
      const variant =
        i % 5 === 1
          ? { ...good, number: good.number + 1 }
          : i % 5 === 2
            ? { ...good, signature: good.signature.replace(/^./, (x: string) => (x === 'a' ? 'b' : 'a')) }
            : i % 5 === 3
              ? { ...good, salt: good.salt.replace('campaign=gated', 'campaign=gatee') }
              : good
      payloads.push(Buffer.from(JSON.stringify(variant)).toString('base64'))
    }
    let accepted = 0
    for (const payload of payloads) {
      const theirs = await verifySolution(payload, key, true)
      const ours = await new ProofOfWork(key).verify('gated', payload)
      expect(ours === null, payload).toBe(theirs)
      if (!theirs) expect(ours).toBe('invalid')
      else accepted++
    }
    expect(accepted).toBe(8) // the unaltered ones of our key: i % 5 === 0
  })

  it('computes the HMAC-SHA256 of a challenge as node:crypto createHmac does, for short and long keys', () => {
    for (const key of [
      'k',
      'a-test-secret-of-some-length',
      'x'.repeat(64),
      'é'.repeat(40),
      randomBytes(90).toString('hex'),
    ]) {
      const hmac = new HmacSha256(key)
      for (let i = 0; i < 20; i++) {
        const challenge = randomBytes(32).toString('hex')
        expect(hmac.hex64(challenge)).toBe(createHmac('sha256', key).update(challenge).digest('hex'))
      }
    }
    expect(() => new HmacSha256('k').hex64('short')).toThrow(RangeError)
  })
})
