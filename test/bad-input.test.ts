import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  partnerKey,
  queueDepth,
  registration,
  startTestSabt,
  type TestSabt,
  testEnv,
} from './support/harness.js'

// Every refused request names the field and the rule, and leaves nothing behind: the gateway runs
// alone (nothing consumes the intake queue), so the queue must still be empty at the end.
describe('bad input is refused with a clear error and leaves no trace', () => {
  let sabt: TestSabt
  beforeAll(async () => {
    sabt = await startTestSabt({ roles: ['gateway'], env: testEnv({ SABT_BODY_LIMIT: '2048' }) })
    partner = `Bearer ${await partnerKey(sabt)}`
  })
  let partner = ''
  afterAll(async () => {
    // The point of the whole file: not one message reached the queue.
    for (const q of sabt.mq!.names.intakeQueues) expect(await queueDepth(q)).toBe(0)
    await sabt?.cleanup()
  })

  const raw = (payload: string | Buffer, contentType: string | null = 'application/json') =>
    sabt.app.inject({
      method: 'POST',
      url: '/v1/registrations',
      payload,
      headers: contentType ? { 'content-type': contentType } : {},
    })
  const post = (body: unknown) => raw(JSON.stringify(body))

  function expectError(
    res: { statusCode: number; json: () => unknown; headers: Record<string, unknown> },
    status: number,
    code: string,
    fieldRules: string[],
  ) {
    expect(res.headers['content-type']).toMatch(/application\/json/)
    const body = res.json() as {
      statusCode: number
      code: string
      message: string
      errors?: { field: string; rule: string; message: string }[]
    }
    expect({ status: res.statusCode, code: body.code }).toEqual({ status, code })
    expect(body.statusCode).toBe(status)
    expect(body.message.length).toBeGreaterThan(0)
    expect((body.errors ?? []).map((e) => `${e.field}:${e.rule}`)).toEqual(fieldRules)
    for (const e of body.errors ?? []) expect(e.message.length).toBeGreaterThan(0)
  }

  it('400 for a body that is not JSON', async () => {
    expectError(await raw('{"campaign": "demo",'), 400, 'SABT_INVALID_JSON', ['(body):json'])
    expectError(await raw(''), 400, 'SABT_INVALID_JSON', ['(body):json'])
  })

  it('400 for a body that is not UTF-8', async () => {
    const bytes = Buffer.concat([
      Buffer.from('{"campaign":"demo","first_name":"'),
      Buffer.from([0xc3, 0x28]),
      Buffer.from('"}'),
    ])
    expectError(await raw(bytes), 400, 'SABT_INVALID_ENCODING', ['(body):utf8'])
  })

  it('400 for prototype-pollution keys', async () => {
    expectError(await raw(`{"__proto__": {"admin": true}, "campaign": "demo"}`), 400, 'SABT_INVALID_JSON', [
      '(body):forbidden_key',
    ])
    expectError(await raw(`{"constructor": {"prototype": {"x": 1}}}`), 400, 'SABT_INVALID_JSON', [
      '(body):forbidden_key',
    ])
  })

  it('415 for anything but application/json', async () => {
    expectError(
      await raw('campaign=demo', 'application/x-www-form-urlencoded'),
      415,
      'SABT_UNSUPPORTED_MEDIA_TYPE',
      ['content-type:media_type'],
    )
    expectError(await raw('{}', 'text/plain'), 415, 'SABT_UNSUPPORTED_MEDIA_TYPE', [
      'content-type:media_type',
    ])
    expectError(await raw('{}', null), 415, 'SABT_UNSUPPORTED_MEDIA_TYPE', ['content-type:media_type'])
  })

  // Found by the fuzz tests: the charset was ignored, so a body its sender declared Latin-1 was read
  // as UTF-8 (and accepted whenever its bytes happened to be valid UTF-8).
  it('415 for JSON declared in a charset other than UTF-8', async () => {
    for (const type of [
      'application/json; charset=latin1',
      'application/json; charset="utf-16"',
      'application/json;charset=',
    ])
      expectError(await raw(JSON.stringify(registration()), type), 415, 'SABT_UNSUPPORTED_MEDIA_TYPE', [
        'content-type:charset',
      ])
  })

  it('413 for a body over the limit', async () => {
    expectError(
      await post(registration({ attributes: { a: 'x'.repeat(3000) } })),
      413,
      'SABT_BODY_TOO_LARGE',
      ['(body):max_bytes'],
    )
  })

  it('422 naming unknown fields (refused, not stripped)', async () => {
    expectError(await post(registration({ admin: true, role: 'x' })), 422, 'SABT_VALIDATION', [
      'admin:unknown_field',
      'role:unknown_field',
    ])
  })

  it('422 for missing fields', async () => {
    const { mobile: _m, birth_date: _b, ...rest } = registration()
    expectError(await post(rest), 422, 'SABT_VALIDATION', ['mobile:required', 'birth_date:required'])
  })

  it('422 for wrong types: never coerced', async () => {
    expectError(await post(registration({ national_id: 499370899 })), 422, 'SABT_VALIDATION', [
      'national_id:type',
    ])
    expectError(await post(registration({ first_name: ['a'] })), 422, 'SABT_VALIDATION', ['first_name:type'])
    expectError(await post(registration({ birth_date: null })), 422, 'SABT_VALIDATION', ['birth_date:type'])
    expectError(await post([registration()]), 422, 'SABT_VALIDATION', ['(body):type'])
    expectError(await post('a string'), 422, 'SABT_VALIDATION', ['(body):type'])
  })

  it('422 for the national-id rules', async () => {
    expectError(await post(registration({ national_id: '0499370898' })), 422, 'SABT_VALIDATION', [
      'national_id:checksum',
    ])
    expectError(await post(registration({ national_id: '1111111111' })), 422, 'SABT_VALIDATION', [
      'national_id:same_digits',
    ])
    expectError(await post(registration({ national_id: '12345' })), 422, 'SABT_VALIDATION', [
      'national_id:format',
    ])
  })

  it('422 for a mobile number that is not Iranian', async () => {
    expectError(await post(registration({ mobile: '02188776655' })), 422, 'SABT_VALIDATION', [
      'mobile:format',
    ])
    expectError(await post(registration({ mobile: '+14155550100' })), 422, 'SABT_VALIDATION', [
      'mobile:format',
    ])
  })

  it('422 for birth dates that are not real past dates', async () => {
    expectError(await post(registration({ birth_date: '1990-02-30' })), 422, 'SABT_VALIDATION', [
      'birth_date:calendar',
    ])
    expectError(await post(registration({ birth_date: '2999-01-01' })), 422, 'SABT_VALIDATION', [
      'birth_date:past',
    ])
    expectError(await post(registration({ birth_date: '21/03/1990' })), 422, 'SABT_VALIDATION', [
      'birth_date:format',
    ])
  })

  it('422 for names with digits, controls or bidi overrides', async () => {
    expectError(await post(registration({ first_name: 'Ali2' })), 422, 'SABT_VALIDATION', [
      'first_name:letters',
    ])
    expectError(await post(registration({ last_name: 'a\u202Eb' })), 422, 'SABT_VALIDATION', [
      'last_name:bidi_control',
    ])
    expectError(await post(registration({ last_name: 'a\nb' })), 422, 'SABT_VALIDATION', [
      'last_name:control_characters',
    ])
  })

  it('422 for attributes that are not a small flat object', async () => {
    expectError(await post(registration({ attributes: { nested: { a: 1 } } })), 422, 'SABT_VALIDATION', [
      'attributes.nested:type',
    ])
    expectError(await post(registration({ attributes: { 'Bad Key': 1 } })), 422, 'SABT_VALIDATION', [
      'attributes.Bad Key:property_name',
    ])
    const many = Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`k${i}`, i]))
    expectError(await post(registration({ attributes: many })), 422, 'SABT_VALIDATION', [
      'attributes:max_properties',
    ])
    expectError(await post(registration({ attributes: [1, 2] })), 422, 'SABT_VALIDATION', ['attributes:type'])
  })

  // Found by the fuzz tests: a key holding a dot or a slash was reported as a nested path
  // ("a/b" → "a.b"), a "~" as Ajv's JSON-Pointer escape "~0", an empty key as the whole body.
  it('422 names odd keys unambiguously: a dot, a slash, a tilde, nothing', async () => {
    expectError(
      await post(registration({ 'a.b': 1, 'a/b': 2, 'a~b': 3, '': 4, '(body)': 5 })),
      422,
      'SABT_VALIDATION',
      [
        '["a.b"]:unknown_field',
        '["a/b"]:unknown_field',
        '["a~b"]:unknown_field',
        '[""]:unknown_field',
        '["(body)"]:unknown_field',
      ],
    )
    expectError(await post(registration({ attributes: { 'x~y/z': [1], '': 2 } })), 422, 'SABT_VALIDATION', [
      'attributes["x~y/z"]:property_name',
      'attributes[""]:property_name',
      'attributes["x~y/z"]:type',
    ])
  })

  // Found by the fuzz tests: the batch route's validator ran with Ajv's `strict: false`, which also
  // turns off strictNumbers, so 1e400 (Infinity to JavaScript) was accepted in a batch and stored
  // as null; the single route refused it.
  it('422 for a number JavaScript cannot hold, alone and in a batch alike', async () => {
    const text = JSON.stringify(registration({ attributes: { big: 1, small: 2 } }))
      .replace('"big":1', '"big":1e400')
      .replace('"small":2', '"small":-1e400')
    expectError(await raw(text), 422, 'SABT_VALIDATION', ['attributes.big:type', 'attributes.small:type'])
    const batch = await sabt.app.inject({
      method: 'POST',
      url: '/v1/registrations/batch',
      payload: `{"records":[${text}]}`,
      headers: { 'content-type': 'application/json', authorization: partner },
    })
    expect(batch.statusCode).toBe(207)
    const result = batch.json().results[0]
    expect(result.status).toBe(422)
    expect(result.errors.map((e: { field: string; rule: string }) => `${e.field}:${e.rule}`)).toEqual([
      'attributes.big:type',
      'attributes.small:type',
    ])
  })

  // With every error reported, Ajv's work and its error list grew with the body: a batch record of
  // 60,000 attribute keys took over a second of CPU and answered 10 MB. Far past what a valid
  // registration can hold (27 members), only the first broken rule is reported.
  it('422 with a bounded error list for a body far larger than a valid one', async () => {
    const huge = JSON.stringify(
      registration({
        attributes: Object.fromEntries(Array.from({ length: 60_000 }, (_, i) => [`K${i}`, [1]])),
      }),
    )
    const batch = await sabt.app.inject({
      method: 'POST',
      url: '/v1/registrations/batch',
      payload: `{"records":[${huge}]}`,
      headers: { 'content-type': 'application/json', authorization: partner },
    })
    expect(batch.statusCode).toBe(207)
    expect(batch.body.length).toBeLessThan(2000)
    expect(batch.json().results[0].errors).toEqual([
      { field: 'attributes', rule: 'max_properties', message: expect.any(String) },
    ])
    const unknown = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`k${i}`, 1]))
    expectError(await post(registration(unknown)), 422, 'SABT_VALIDATION', ['k0:unknown_field'])
  })

  it('422 for an unknown campaign, and for one not open yet', async () => {
    expectError(await post(registration({ campaign: 'nope' })), 422, 'SABT_UNKNOWN_CAMPAIGN', [
      'campaign:known_campaign',
    ])
    expectError(await post(registration({ campaign: 'later' })), 422, 'SABT_CAMPAIGN_NOT_OPEN', [
      'campaign:open',
    ])
  })

  it('404 in the same JSON shape for an unknown route', async () => {
    const res = await sabt.app.inject({ method: 'GET', url: '/nope' })
    expectError(res, 404, 'SABT_NOT_FOUND', [])
  })
})
