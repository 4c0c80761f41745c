import { isAbsolute, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import jsonata from 'jsonata'
import Type, { type Static } from 'typebox'
import { ConfigError } from './env.js'

/**
 * Providers are configuration (decision 018): a definition says how to ask a third party — method,
 * URL, headers, authentication, which of a registration's fields it gets — and how to read its
 * answer, with JSONata expressions compiled once at start. Sample answers with the outcome each
 * must map to are checked at start: a wrong mapping stops the process, naming the key, instead of
 * mis-judging a million people. Anything the declarative form cannot say goes in a provider
 * module (an ESM file named by `module:`) implementing ProviderModule.
 */

/** A registration's fields a provider may be given; `national_id` and `mobile` are sealed at rest. */
export const SUBJECT_FIELDS = [
  'id',
  'campaign',
  'national_id',
  'mobile',
  'first_name',
  'last_name',
  'birth_date',
] as const
export type SubjectField = (typeof SUBJECT_FIELDS)[number]
export type PersonalField = 'national_id' | 'mobile'
const PERSONAL: readonly SubjectField[] = ['national_id', 'mobile']

/** What a provider is given: only the fields its definition names. */
export type CheckSubject = Partial<Record<SubjectField, string>>

/** A definite answer read from a provider: its outcome, and (for a "no") why. */
export interface Answer {
  outcome: 'passed' | 'failed'
  /** A short machine-readable code (`not_found`): not personal data, shown and counted. */
  reason: string | null
  /** The provider's own words: treated as personal data (stored, shown to whom it concerns, never logged). */
  text: string | null
}

/** A provider module's default export (module: path in config). */
export interface ProviderModule {
  /** Fields the request needs: the checker opens only these sealed fields, only to call. */
  fields: readonly SubjectField[]
  buildRequest(subject: CheckSubject): unknown | Promise<unknown>
  /** A definite answer, or null when the answer cannot be read (a permanent failure). */
  readAnswer(body: unknown, status: number): Answer | null | Promise<Answer | null>
  /** Extra headers for a call (e.g. a signature of its own kind). */
  headers?(body: string, request: { method: string; path: string }): Record<string, string>
}

export const REASON_CODE = /^[a-z0-9][a-z0-9_.-]{0,63}$/

const Expr = Type.String({ minLength: 1, description: 'a JSONata expression' })

const AuthSchema = Type.Union([
  Type.Object(
    {
      type: Type.Literal('header'),
      name: Type.String({ minLength: 1 }),
      value: Type.String({ minLength: 1 }),
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      type: Type.Literal('hmac'),
      secret: Type.String({ minLength: 8 }),
      algorithm: Type.Optional(Type.Union([Type.Literal('sha256'), Type.Literal('sha512')])),
      header: Type.Optional(Type.String({ minLength: 1 })),
      /** Placeholders: {method} {path} {timestamp} {nonce} {body} {body_sha256} {header:NAME} and \n. */
      canonical: Type.Optional(Type.String({ minLength: 1 })),
      encoding: Type.Optional(Type.Union([Type.Literal('hex'), Type.Literal('base64')])),
      prefix: Type.Optional(Type.String()),
      timestamp_header: Type.Optional(Type.String({ minLength: 1 })),
      nonce_header: Type.Optional(Type.String({ minLength: 1 })),
      key_id: Type.Optional(Type.String({ minLength: 1 })),
      key_id_header: Type.Optional(Type.String({ minLength: 1 })),
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      type: Type.Literal('oauth2_client_credentials'),
      token_url: Type.String({ minLength: 1 }),
      client_id: Type.String({ minLength: 1 }),
      client_secret: Type.String({ minLength: 1 }),
      scope: Type.Optional(Type.String()),
      audience: Type.Optional(Type.String()),
      /** Fetch a new token this long before the old one expires. */
      refresh_before_s: Type.Optional(Type.Integer({ minimum: 0 })),
    },
    { additionalProperties: false },
  ),
])

const SampleSchema = Type.Object(
  {
    answer: Type.Unknown(),
    outcome: Type.Union([Type.Literal('passed'), Type.Literal('failed'), Type.Literal('unreadable')]),
    reason: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
)

export const ProviderDefinitionSchema = Type.Object(
  {
    /** An ESM file implementing ProviderModule, relative to the configuration file. */
    module: Type.Optional(Type.String({ minLength: 1 })),
    method: Type.Optional(Type.Union([Type.Literal('POST'), Type.Literal('PUT')])),
    url: Type.Optional(Type.String({ minLength: 1 })),
    headers: Type.Optional(Type.Record(Type.String(), Type.String())),
    auth: Type.Optional(AuthSchema),
    fields: Type.Optional(
      Type.Array(
        Type.Union([
          Type.Literal('id'),
          Type.Literal('campaign'),
          Type.Literal('national_id'),
          Type.Literal('mobile'),
          Type.Literal('first_name'),
          Type.Literal('last_name'),
          Type.Literal('birth_date'),
        ]),
        { minItems: 1 },
      ),
    ),
    /** The request body built from the named fields; without it, the named fields as they are. */
    body: Type.Optional(Expr),
    idempotency_key: Type.Optional(Type.Boolean()),
    answer: Type.Optional(
      Type.Object(
        {
          /** → "passed" / "failed" (or true / false); anything else: the answer cannot be read. */
          outcome: Expr,
          reason: Type.Optional(Expr),
          text: Type.Optional(Expr),
        },
        { additionalProperties: false },
      ),
    ),
    samples: Type.Optional(Type.Array(SampleSchema)),
  },
  { additionalProperties: false },
)
export type ProviderDefinition = Static<typeof ProviderDefinitionSchema>
export type AuthDefinition = Static<typeof AuthSchema>

/**
 * The three providers the simulator plays, as definitions: the defaults for `providers:` (a
 * configuration may redefine them), spelled out the same in config/sabt.yaml.
 */
export const BUILTIN_PROVIDERS: Record<string, ProviderDefinition> = {
  identity: {
    fields: ['national_id', 'first_name', 'last_name', 'birth_date'],
    answer: {
      outcome: 'match = true ? "passed" : match = false ? "failed"',
      reason: 'reason',
      text: 'reason_text',
    },
    samples: [
      { answer: { match: true }, outcome: 'passed' },
      { answer: { match: false, reason: 'not_found' }, outcome: 'failed', reason: 'not_found' },
      { answer: { status: 'ok' }, outcome: 'unreadable' },
    ],
  },
  mobile: {
    fields: ['national_id', 'mobile'],
    answer: {
      outcome: 'match = true ? "passed" : match = false ? "failed"',
      reason: 'reason',
      text: 'reason_text',
    },
    samples: [
      { answer: { match: true }, outcome: 'passed' },
      { answer: { match: false, reason: 'not_owner' }, outcome: 'failed', reason: 'not_owner' },
    ],
  },
  eligibility: {
    fields: ['national_id', 'campaign'],
    answer: {
      outcome: 'eligible = true ? "passed" : eligible = false ? "failed"',
      reason: 'reason',
      text: 'reason_text',
    },
    samples: [
      { answer: { eligible: true }, outcome: 'passed' },
      { answer: { eligible: false, reason: 'already_served' }, outcome: 'failed', reason: 'already_served' },
    ],
  },
}

/** A definition ready to call: expressions compiled, samples checked, module loaded. */
export interface CompiledProvider {
  name: string
  method: 'POST' | 'PUT'
  url: string | null
  headers: Record<string, string>
  auth: AuthDefinition | null
  fields: readonly SubjectField[]
  /** The sealed fields among them: the checker opens only these. */
  needs: readonly PersonalField[]
  idempotencyKey: boolean
  buildRequest(subject: CheckSubject): unknown | Promise<unknown>
  readAnswer(body: unknown, status: number): Answer | null | Promise<Answer | null>
  extraHeaders: ProviderModule['headers'] | null
}

function compile(expr: string, key: string): jsonata.Expression {
  try {
    return jsonata(expr)
  } catch (err) {
    const e = err as { message?: string; position?: number }
    throw new ConfigError(
      `invalid configuration: ${key}: not a JSONata expression (${e.message ?? String(err)} at ${e.position ?? '?'})`,
    )
  }
}

function text(v: unknown): string | null {
  if (v === undefined || v === null) return null
  if (typeof v === 'string') return v.length > 0 ? v.slice(0, 500) : null
  if (typeof v === 'number' || typeof v === 'boolean') return String(v)
  return null
}

/** A provider's code as Sabt keeps it: lowercase, `_` for anything outside [a-z0-9_.-]. */
export function normaliseReason(v: unknown): string | null {
  const t = text(v)
  if (t === null) return null
  const code = t
    .toLowerCase()
    .replace(/[^a-z0-9_.-]+/g, '_')
    .replace(/^[^a-z0-9]+/, '')
    .slice(0, 64)
  return REASON_CODE.test(code) ? code : null
}

function declarative(name: string, def: ProviderDefinition, key: string): CompiledProvider {
  if (!def.fields)
    throw new ConfigError(`invalid configuration: ${key}.fields: missing (which fields it is sent)`)
  if (!def.answer)
    throw new ConfigError(`invalid configuration: ${key}.answer: missing (how its answer is read)`)
  const fields = [...new Set(def.fields)]
  const body = def.body ? compile(def.body, `${key}.body`) : null
  const outcome = compile(def.answer.outcome, `${key}.answer.outcome`)
  const reason = def.answer.reason ? compile(def.answer.reason, `${key}.answer.reason`) : null
  const reasonText = def.answer.text ? compile(def.answer.text, `${key}.answer.text`) : null
  return {
    ...common(name, def, fields),
    // Without a body expression, the named fields as they are: no expression on the hot path.
    buildRequest: body
      ? (s) => body.evaluate(s)
      : (s) => {
          const out: Record<string, string | undefined> = {}
          for (const f of fields) out[f] = s[f]
          return out
        },
    readAnswer: async (answer, status) => {
      let o: unknown
      try {
        o = await outcome.evaluate(answer, { status })
      } catch {
        return null
      }
      const out = o === 'passed' || o === true ? 'passed' : o === 'failed' || o === false ? 'failed' : null
      if (!out) return null
      if (out === 'passed') return { outcome: out, reason: null, text: null }
      const [code, words] = await Promise.all([
        reason?.evaluate(answer, { status }).catch(() => null),
        reasonText?.evaluate(answer, { status }).catch(() => null),
      ])
      return { outcome: out, reason: normaliseReason(code) ?? 'unspecified', text: text(words) }
    },
    extraHeaders: null,
  }
}

function common(
  name: string,
  def: ProviderDefinition,
  fields: readonly SubjectField[],
): Pick<
  CompiledProvider,
  'name' | 'method' | 'url' | 'headers' | 'auth' | 'fields' | 'needs' | 'idempotencyKey'
> {
  return {
    name,
    method: def.method ?? 'POST',
    url: def.url ?? null,
    headers: def.headers ?? {},
    auth: def.auth ?? null,
    fields,
    needs: fields.filter((f): f is PersonalField => PERSONAL.includes(f)),
    idempotencyKey: def.idempotency_key ?? true,
  }
}

async function fromModule(
  name: string,
  def: ProviderDefinition,
  key: string,
  baseDir: string,
): Promise<CompiledProvider> {
  if (def.fields || def.body || def.answer)
    throw new ConfigError(
      `invalid configuration: ${key}.module: a provider module builds its own request and reads its own answer (no fields, body or answer beside it)`,
    )
  const path = isAbsolute(def.module!) ? def.module! : resolve(baseDir, def.module!)
  let mod: { default?: Partial<ProviderModule> }
  try {
    mod = (await import(pathToFileURL(path).href)) as { default?: Partial<ProviderModule> }
  } catch (err) {
    throw new ConfigError(
      `invalid configuration: ${key}.module: cannot load ${path}: ${(err as Error).message}`,
    )
  }
  const p = mod.default
  if (
    !p ||
    !Array.isArray(p.fields) ||
    typeof p.buildRequest !== 'function' ||
    typeof p.readAnswer !== 'function' ||
    p.fields.some((f) => !SUBJECT_FIELDS.includes(f))
  )
    throw new ConfigError(
      `invalid configuration: ${key}.module: ${path} must export default { fields, buildRequest, readAnswer } (fields from ${SUBJECT_FIELDS.join(', ')})`,
    )
  const fields = [...new Set(p.fields)]
  return {
    ...common(name, def, fields),
    buildRequest: p.buildRequest.bind(p),
    readAnswer: async (body, status) => {
      const a = await p.readAnswer!(body, status)
      if (!a || (a.outcome !== 'passed' && a.outcome !== 'failed')) return null
      return a.outcome === 'passed'
        ? { outcome: 'passed', reason: null, text: null }
        : { outcome: 'failed', reason: normaliseReason(a.reason) ?? 'unspecified', text: text(a.text) }
    },
    extraHeaders: p.headers ? p.headers.bind(p) : null,
  }
}

async function checkSamples(p: CompiledProvider, def: ProviderDefinition, key: string): Promise<void> {
  for (const [i, s] of (def.samples ?? []).entries()) {
    const got = await p.readAnswer(s.answer, 200)
    const outcome = got?.outcome ?? 'unreadable'
    const wantReason = s.reason === undefined ? undefined : normaliseReason(s.reason)
    const show = (o: string, r: string | null | undefined) => (r ? `${o} (${r})` : o)
    if (outcome !== s.outcome || (wantReason !== undefined && (got?.reason ?? null) !== wantReason))
      throw new ConfigError(
        `invalid configuration: ${key}.samples.${i}: the answer ${JSON.stringify(s.answer)} maps to ${show(outcome, got?.reason)}, the sample says ${show(s.outcome, wantReason)}`,
      )
  }
}

/**
 * Compiles every definition a configuration uses (its own and the built-in ones it does not
 * redefine), loads provider modules and checks every sample answer. Throws ConfigError naming the
 * key; once at start, never on a call.
 */
export async function compileProviders(
  definitions: ReadonlyMap<string, ProviderDefinition>,
  used: Iterable<string>,
  baseDir: string,
): Promise<Map<string, CompiledProvider>> {
  const out = new Map<string, CompiledProvider>()
  for (const name of new Set(used)) {
    const def = definitions.get(name)
    const key = `providers.${name}`
    if (!def) throw new ConfigError(`invalid configuration: ${key}: no such provider`)
    const p = def.module ? await fromModule(name, def, key, baseDir) : declarative(name, def, key)
    await checkSamples(p, def, key)
    out.set(name, p)
  }
  return out
}
