import { readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import Type, { type Static } from 'typebox'
import { Compile } from 'typebox/compile'
import { parse as parseYaml } from 'yaml'
import { ConfigError } from './env.js'
import { BUILTIN_PROVIDERS, type ProviderDefinition, ProviderDefinitionSchema } from './providers.js'

/**
 * Campaigns and checks are configuration, not code: a YAML (or JSON) file declares the checks
 * (which provider, where, how fast, how patient) and the campaigns with the checks each requires.
 * `${VAR}` and `${VAR:-default}` in strings are read from the environment.
 */
const SLUG = /^[a-z0-9][a-z0-9-]{0,62}$/
const CHECK_NAME = /^[a-z][a-z0-9_]{0,31}$/
const Slug = Type.String({ pattern: SLUG.source })
const CheckName = Type.String({ pattern: CHECK_NAME.source })
const Duration = Type.String({ pattern: '^[0-9]+(ms|s|m|h)$' })

export const CheckConfigSchema = Type.Object(
  {
    provider: CheckName,
    /** Where the provider is called; defaults to its definition's url. */
    url: Type.Optional(Type.String({ minLength: 1 })),
    auth_header: Type.Optional(Type.String()),
    timeout_ms: Type.Optional(Type.Integer({ minimum: 1 })),
    concurrency: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024 })),
    rate_per_second: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
    max_attempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
    cache_ttl_s: Type.Optional(Type.Integer({ minimum: 0 })),
    breaker: Type.Optional(
      Type.Object(
        {
          consecutive_failures: Type.Optional(Type.Integer({ minimum: 1 })),
          half_open_after_ms: Type.Optional(Type.Integer({ minimum: 10 })),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
)

const CampaignCheckRef = Type.Union([
  CheckName,
  Type.Object(
    { name: CheckName, after: Type.Optional(Type.Array(CheckName, { minItems: 1 })) },
    { additionalProperties: false },
  ),
])

/** The texts sent to citizens (decision 021): placeholders {code} (tracking code), {title}, {otp}. */
const MessageTexts = Type.Object(
  {
    receipt: Type.Optional(Type.String({ minLength: 1, maxLength: 480 })),
    accepted: Type.Optional(Type.String({ minLength: 1, maxLength: 480 })),
    rejected: Type.Optional(Type.String({ minLength: 1, maxLength: 480 })),
    won: Type.Optional(Type.String({ minLength: 1, maxLength: 480 })),
    waitlisted: Type.Optional(Type.String({ minLength: 1, maxLength: 480 })),
    otp: Type.Optional(Type.String({ minLength: 1, maxLength: 480 })),
  },
  { additionalProperties: false },
)

/** The SMS provider citizens' messages go through: configured like a check (decision 021). */
export const SmsConfigSchema = Type.Object(
  {
    url: Type.String({ minLength: 1 }),
    auth_header: Type.Optional(Type.String()),
    timeout_ms: Type.Optional(Type.Integer({ minimum: 1 })),
    concurrency: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024 })),
    rate_per_second: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
    max_attempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
    breaker: Type.Optional(
      Type.Object(
        {
          consecutive_failures: Type.Optional(Type.Integer({ minimum: 1 })),
          half_open_after_ms: Type.Optional(Type.Integer({ minimum: 10 })),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
)

export const CampaignConfigSchema = Type.Object(
  {
    title: Type.String({ minLength: 1 }),
    /** A proof-of-work gate on single registrations (ALTCHA challenges, decision 021); off by default. */
    proof_of_work: Type.Optional(
      Type.Object(
        {
          /** The largest number a challenge hides: the work is about half of it, in SHA-256 hashes. */
          max_number: Type.Optional(Type.Integer({ minimum: 1000, maximum: 10_000_000 })),
          expires_s: Type.Optional(Type.Integer({ minimum: 10, maximum: 3600 })),
        },
        { additionalProperties: false },
      ),
    ),
    /** Texts of the SMS sent to citizens (Persian defaults); `false`: this campaign sends none. */
    messages: Type.Optional(Type.Union([MessageTexts, Type.Literal(false)])),
    opens_at: Type.Optional(Type.String({ format: 'date-time' })),
    closes_at: Type.Optional(Type.String({ format: 'date-time' })),
    checks: Type.Optional(Type.Array(CampaignCheckRef)),
    retention_days: Type.Optional(Type.Integer({ minimum: 1 })),
    callback_url: Type.Optional(Type.String({ minLength: 1 })),
    // The environment variable holding this campaign's callback secret (only the checker is given
    // it); unset: SABT_CALLBACK_SECRET. One secret per receiver: no receiver can forge another's.
    callback_secret_env: Type.Optional(Type.String({ pattern: '^[A-Z][A-Z0-9_]*$' })),
    max_records_per_person: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
    capacity: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000_000 })),
    allocation: Type.Optional(Type.Union([Type.Literal('first_come'), Type.Literal('lottery')])),
    draw_at: Type.Optional(Type.String({ format: 'date-time' })),
  },
  { additionalProperties: false },
)

export const SabtConfigSchema = Type.Object(
  {
    retry_tiers: Type.Array(Duration, { minItems: 1, default: ['1s', '10s', '1m', '10m'] }),
    /** How to ask each third party and read its answer (src/config/providers.ts, docs/providers.md). */
    providers: Type.Record(CheckName, ProviderDefinitionSchema, { default: {} }),
    checks: Type.Record(CheckName, CheckConfigSchema, { default: {} }),
    /** Messages to citizens (receipts, verdicts, one-time codes); absent: none are sent. */
    sms: Type.Optional(SmsConfigSchema),
    campaigns: Type.Record(Slug, CampaignConfigSchema, { minProperties: 1 }),
  },
  { additionalProperties: false },
)

type CheckConfigRaw = Static<typeof CheckConfigSchema>

/** A check with every default filled in. */
export interface CheckConfig {
  name: string
  provider: string
  url: string
  auth_header: string | null
  timeout_ms: number
  concurrency: number
  rate_per_second: number
  max_attempts: number
  cache_ttl_s: number
  breaker: { consecutive_failures: number; half_open_after_ms: number }
}

export const CHECK_DEFAULTS = {
  timeout_ms: 2000,
  concurrency: 16,
  rate_per_second: 100,
  max_attempts: 6,
  cache_ttl_s: 0,
  breaker: { consecutive_failures: 10, half_open_after_ms: 5000 },
} as const

export const CAMPAIGN_DEFAULTS = {
  /**
   * Records (each one checked, each one spending provider quota) one person may have in a campaign:
   * a typo gets another chance, a stranger holding someone's national id cannot spend without bound.
   */
  max_records_per_person: 3,
} as const

export interface CampaignCheck {
  name: string
  /** Checks that must have passed before this one is asked (spend paid quota only when it matters). */
  after: string[]
}

export interface Campaign {
  slug: string
  title: string
  opensAt: number | null
  closesAt: number | null
  checks: CampaignCheck[]
  retentionDays: number | null
  callbackUrl: string | null
  /** The variable named by `callback_secret_env` (null: the global SABT_CALLBACK_SECRET signs). */
  callbackSecretEnv: string | null
  /**
   * Its value in this process's environment (null where it is not given, e.g. every role but the
   * checker). Not enumerable: a configuration printed or serialised never shows it.
   */
  readonly callbackSecret: string | null
  /** Past this many records of one person, a submission is a plain duplicate (decision 015). */
  maxRecordsPerPerson: number
  /** A scarce campaign (decision 019): how many can win, and how the winners are chosen; else null. */
  scarce: Scarce | null
  /** The texts of its messages to citizens, every one filled in; null: it sends none. */
  messages: CitizenTexts | null
  /** Its proof-of-work gate (single registrations must carry a solved, unused challenge); null: off. */
  proofOfWork: { maxNumber: number; expiresS: number } | null
}

export type CitizenTexts = Record<'receipt' | 'accepted' | 'rejected' | 'won' | 'waitlisted' | 'otp', string>

/** Persian by default: the tracking code and the campaign's title, nothing personal. */
export const DEFAULT_TEXTS: CitizenTexts = {
  receipt: 'ثبت‌نام شما در «{title}» دریافت شد. کد رهگیری: {code}',
  accepted: 'ثبت‌نام {code} در «{title}» پذیرفته شد.',
  rejected: 'ثبت‌نام {code} در «{title}» پذیرفته نشد. جزئیات با کد رهگیری در سامانه.',
  won: 'ثبت‌نام {code} در «{title}» پذیرفته شد و سهمیه به شما رسید.',
  waitlisted: 'ثبت‌نام {code} در «{title}» پذیرفته شد؛ در فهرست انتظار هستید.',
  otp: 'کد یک‌بار مصرف «{title}»: {otp} (۵ دقیقه اعتبار دارد)',
}

const PLACEHOLDERS: Record<keyof CitizenTexts, readonly string[]> = {
  receipt: ['code', 'title'],
  accepted: ['code', 'title'],
  rejected: ['code', 'title'],
  won: ['code', 'title'],
  waitlisted: ['code', 'title'],
  otp: ['otp', 'title'],
}

/** The SMS provider with every default filled in (like a check). */
export interface SmsConfig {
  url: string
  auth_header: string | null
  timeout_ms: number
  concurrency: number
  rate_per_second: number
  max_attempts: number
  breaker: { consecutive_failures: number; half_open_after_ms: number }
}

/** A text with its placeholders filled: only {code}, {title}, {otp} exist (checked at start). */
export function fillText(text: string, values: Partial<Record<'code' | 'title' | 'otp', string>>): string {
  return text.replace(/\{(code|title|otp)\}/g, (_, k: 'code' | 'title' | 'otp') => values[k] ?? '')
}

function textsOf(slug: string, m: Static<typeof MessageTexts> | false | undefined): CitizenTexts | null {
  if (m === false) return null
  const texts = { ...DEFAULT_TEXTS, ...(m ?? {}) }
  for (const [kind, text] of Object.entries(texts) as [keyof CitizenTexts, string][]) {
    for (const [, name] of text.matchAll(/\{([^}]*)\}/g))
      if (!PLACEHOLDERS[kind].includes(name!))
        throw new ConfigError(
          `invalid configuration: campaigns.${slug}.messages.${kind}: unknown placeholder {${name}} (allowed: ${PLACEHOLDERS[kind].map((p) => `{${p}}`).join(', ')})`,
        )
  }
  return texts
}

/**
 * first_come: the first `capacity` accepted registrations in arrival order (the gateway's receive
 * time of the person's earliest submission). lottery: ranked by HMAC-SHA256(seed, id) at `drawAt`,
 * the seed committed (its SHA-256 published) before the campaign opens.
 */
export type Scarce =
  | { capacity: number; allocation: 'first_come'; drawAt: null }
  | { capacity: number; allocation: 'lottery'; drawAt: number }

export interface SabtConfig {
  retryTiersMs: number[]
  /** Provider definitions: the configuration's own, then the built-in ones it did not redefine. */
  providers: Map<string, ProviderDefinition>
  /** Where a provider module's relative path starts (the configuration file's folder). */
  baseDir: string
  checks: Map<string, CheckConfig>
  campaigns: Map<string, Campaign>
  /** The SMS provider of messages to citizens; null: none are sent. */
  sms: SmsConfig | null
}

const validator = Compile(SabtConfigSchema)

export function defaultConfigPath(): string {
  // dist/config/campaigns.js or src/config/campaigns.ts → <package>/config/sabt.yaml
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'config', 'sabt.yaml')
}

export function parseDuration(d: string): number {
  const m = /^([0-9]+)(ms|s|m|h)$/.exec(d)
  if (!m) throw new ConfigError(`bad duration ${d}`)
  const n = Number(m[1])
  return n * ({ ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const)[m[2] as 'ms' | 's' | 'm' | 'h']
}

function interpolate(value: unknown, env: Record<string, string | undefined>, path: string): unknown {
  if (typeof value === 'string') {
    // Innermost first, so a default may itself be a ${VAR:-default}.
    let out = value
    for (let i = 0; i < 8 && out.includes('${'); i++) {
      out = out.replace(/\$\{([A-Z0-9_]+)(?::-([^}$]*))?\}/g, (_, name: string, def: string | undefined) => {
        const v = env[name]
        if (v !== undefined && v !== '') return v
        if (def !== undefined) return def
        throw new ConfigError(`${path}: environment variable ${name} is not set and has no default`)
      })
    }
    return out
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolate(v, env, `${path}[${i}]`))
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(value)) out[k] = interpolate(v, env, path ? `${path}.${k}` : k)
    return out
  }
  return value
}

function keyPath(instancePath: string): string {
  return instancePath.replace(/^\//, '').replace(/\//g, '.') || '(root)'
}

/** Validates a parsed configuration document; errors name the offending key. */
export function buildConfig(
  doc: unknown,
  env: Record<string, string | undefined> = process.env,
  baseDir: string = process.cwd(),
): SabtConfig {
  const withEnv = interpolate(doc ?? {}, env, '')
  const withDefaults = validator.Default(withEnv)
  if (!validator.Check(withDefaults)) {
    const first = validator.Errors(withDefaults).slice(0, 5)
    const detail = first
      .map((e) => {
        const extra =
          e.keyword === 'additionalProperties'
            ? ` (unknown key ${(e.params as { additionalProperties?: string[] }).additionalProperties?.join(', ')})`
            : e.keyword === 'required'
              ? ` (missing ${(e.params as { requiredProperties?: string[] }).requiredProperties?.join(', ')})`
              : ''
        return `${keyPath(e.instancePath)}: ${e.message}${extra}`
      })
      .join('; ')
    throw new ConfigError(`invalid configuration: ${detail}`)
  }
  const raw = withDefaults as Static<typeof SabtConfigSchema>
  for (const name of Object.keys(raw.checks))
    if (!CHECK_NAME.test(name) || name === 'callback')
      throw new ConfigError(
        `invalid configuration: checks.${name}: a check name is lowercase letters, digits and _ (and not "callback": reserved)`,
      )
  for (const slug of Object.keys(raw.campaigns))
    if (!SLUG.test(slug))
      throw new ConfigError(
        `invalid configuration: campaigns.${slug}: a campaign slug is lowercase letters, digits and -`,
      )

  const providers = new Map<string, ProviderDefinition>(Object.entries(BUILTIN_PROVIDERS))
  for (const [name, p] of Object.entries(raw.providers)) {
    if (!CHECK_NAME.test(name))
      throw new ConfigError(
        `invalid configuration: providers.${name}: a provider name is lowercase letters, digits and _`,
      )
    providers.set(name, p)
  }
  const checks = new Map<string, CheckConfig>()
  for (const [name, c] of Object.entries(raw.checks)) {
    const def = providers.get(c.provider)
    if (!def)
      throw new ConfigError(
        `invalid configuration: checks.${name}.provider: no provider named ${c.provider} (defined: ${[...providers.keys()].join(', ')})`,
      )
    const url = c.url ?? def.url
    if (!url)
      throw new ConfigError(
        `invalid configuration: checks.${name}.url: missing (and providers.${c.provider} has no url)`,
      )
    try {
      new URL(url)
    } catch {
      throw new ConfigError(`invalid configuration: checks.${name}.url: not a URL (${url})`)
    }
    checks.set(name, fillCheckDefaults(name, { ...c, url }))
  }

  const campaigns = new Map<string, Campaign>()
  for (const [slug, c] of Object.entries(raw.campaigns)) {
    const refs: CampaignCheck[] = (c.checks ?? []).map((r) =>
      typeof r === 'string' ? { name: r, after: [] } : { name: r.name, after: r.after ?? [] },
    )
    const names = new Set<string>()
    for (const [i, ref] of refs.entries()) {
      if (!checks.has(ref.name))
        throw new ConfigError(
          `invalid configuration: campaigns.${slug}.checks.${i}: unknown check ${ref.name}`,
        )
      if (names.has(ref.name))
        throw new ConfigError(
          `invalid configuration: campaigns.${slug}.checks.${i}: ${ref.name} listed twice`,
        )
      names.add(ref.name)
    }
    for (const [i, ref] of refs.entries()) {
      for (const dep of ref.after) {
        if (!names.has(dep) || dep === ref.name)
          throw new ConfigError(
            `invalid configuration: campaigns.${slug}.checks.${i}.after: ${dep} is not another check of this campaign`,
          )
      }
    }
    assertAcyclic(slug, refs)
    const opensAt = c.opens_at ? Date.parse(c.opens_at) : null
    const closesAt = c.closes_at ? Date.parse(c.closes_at) : null
    if (opensAt !== null && closesAt !== null && closesAt <= opensAt)
      throw new ConfigError(`invalid configuration: campaigns.${slug}.closes_at: must be after opens_at`)
    const scarce = scarceOf(slug, c, closesAt)
    const campaign = {
      slug,
      title: c.title,
      opensAt,
      closesAt,
      checks: refs,
      retentionDays: c.retention_days ?? null,
      callbackUrl: c.callback_url ?? null,
      maxRecordsPerPerson: c.max_records_per_person ?? CAMPAIGN_DEFAULTS.max_records_per_person,
      scarce,
      callbackSecretEnv: c.callback_secret_env ?? null,
      messages: textsOf(slug, c.messages),
      proofOfWork: c.proof_of_work
        ? { maxNumber: c.proof_of_work.max_number ?? 50_000, expiresS: c.proof_of_work.expires_s ?? 300 }
        : null,
    } as Campaign
    Object.defineProperty(campaign, 'callbackSecret', {
      value: (c.callback_secret_env && env[c.callback_secret_env]) || null,
      enumerable: false,
    })
    campaigns.set(slug, campaign)
  }

  let sms: SmsConfig | null = null
  if (raw.sms) {
    try {
      new URL(raw.sms.url)
    } catch {
      throw new ConfigError(`invalid configuration: sms.url: not a URL (${raw.sms.url})`)
    }
    const d = CHECK_DEFAULTS
    sms = {
      url: raw.sms.url,
      auth_header: raw.sms.auth_header || null,
      timeout_ms: raw.sms.timeout_ms ?? d.timeout_ms,
      concurrency: raw.sms.concurrency ?? d.concurrency,
      rate_per_second: raw.sms.rate_per_second ?? d.rate_per_second,
      max_attempts: raw.sms.max_attempts ?? 8,
      breaker: {
        consecutive_failures: raw.sms.breaker?.consecutive_failures ?? d.breaker.consecutive_failures,
        half_open_after_ms: raw.sms.breaker?.half_open_after_ms ?? d.breaker.half_open_after_ms,
      },
    }
  }
  return { retryTiersMs: raw.retry_tiers.map(parseDuration), providers, baseDir, checks, campaigns, sms }
}

/** capacity, allocation and draw_at go together: each error names the key that is wrong or missing. */
function scarceOf(
  slug: string,
  c: Static<typeof CampaignConfigSchema>,
  closesAt: number | null,
): Scarce | null {
  const key = (k: string) => `invalid configuration: campaigns.${slug}.${k}`
  if (c.capacity === undefined && c.allocation === undefined && c.draw_at === undefined) return null
  if (c.capacity === undefined)
    throw new ConfigError(`${key('capacity')}: required with allocation or draw_at`)
  if (c.allocation === undefined)
    throw new ConfigError(`${key('allocation')}: required with capacity (first_come or lottery)`)
  if (c.allocation === 'first_come') {
    if (c.draw_at !== undefined)
      throw new ConfigError(`${key('draw_at')}: only a lottery has a draw (allocation is first_come)`)
    return { capacity: c.capacity, allocation: 'first_come', drawAt: null }
  }
  if (c.draw_at === undefined) throw new ConfigError(`${key('draw_at')}: required for allocation lottery`)
  if (closesAt === null) throw new ConfigError(`${key('closes_at')}: required for allocation lottery`)
  const drawAt = Date.parse(c.draw_at)
  if (drawAt <= closesAt) throw new ConfigError(`${key('draw_at')}: must be after closes_at`)
  return { capacity: c.capacity, allocation: 'lottery', drawAt }
}

function fillCheckDefaults(name: string, c: CheckConfigRaw & { url: string }): CheckConfig {
  const d = CHECK_DEFAULTS
  return {
    name,
    provider: c.provider,
    url: c.url,
    auth_header: c.auth_header || null,
    timeout_ms: c.timeout_ms ?? d.timeout_ms,
    concurrency: c.concurrency ?? d.concurrency,
    rate_per_second: c.rate_per_second ?? d.rate_per_second,
    max_attempts: c.max_attempts ?? d.max_attempts,
    cache_ttl_s: c.cache_ttl_s ?? d.cache_ttl_s,
    breaker: {
      consecutive_failures: c.breaker?.consecutive_failures ?? d.breaker.consecutive_failures,
      half_open_after_ms: c.breaker?.half_open_after_ms ?? d.breaker.half_open_after_ms,
    },
  }
}

function assertAcyclic(slug: string, refs: CampaignCheck[]): void {
  const deps = new Map(refs.map((r) => [r.name, r.after]))
  const state = new Map<string, 'visiting' | 'done'>()
  const visit = (n: string): void => {
    if (state.get(n) === 'done') return
    if (state.get(n) === 'visiting')
      throw new ConfigError(
        `invalid configuration: campaigns.${slug}.checks: 'after' forms a cycle through ${n}`,
      )
    state.set(n, 'visiting')
    for (const d of deps.get(n) ?? []) visit(d)
    state.set(n, 'done')
  }
  for (const r of refs) visit(r.name)
}

export function loadConfigFile(
  path: string,
  env: Record<string, string | undefined> = process.env,
): SabtConfig {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new ConfigError(`cannot read SABT_CONFIG ${path}: ${(err as Error).message}`)
  }
  let doc: unknown
  try {
    doc = parseYaml(text) // YAML is a superset of JSON: both work
  } catch (err) {
    throw new ConfigError(`cannot parse ${path}: ${(err as Error).message}`)
  }
  try {
    return buildConfig(doc, env, dirname(resolve(path)))
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(`${path}: ${err.message}`)
    throw err
  }
}

/** The checks a campaign asks first: those that wait on no other check. */
export function firstChecks(campaign: Campaign): string[] {
  return campaign.checks.filter((c) => c.after.length === 0).map((c) => c.name)
}

/**
 * A campaign or check missing from this process's configuration is never "no checks required":
 * the record is held — its message waits in a delay tier and comes back, no attempt spent,
 * nothing decided — until a process whose configuration has it takes the message. Every hold is
 * counted (sabt_checks_held_total, on the dashboard) and logged.
 */
export type HeldReason = 'unknown_campaign' | 'check_not_in_campaign'

/** The campaign, if this configuration says what `check` means for it; else why not. */
export function configuredFor(
  config: SabtConfig,
  campaignSlug: string,
  check: string,
): { campaign: Campaign } | { held: HeldReason } {
  const campaign = config.campaigns.get(campaignSlug)
  if (!campaign) return { held: 'unknown_campaign' }
  if (check === 'callback') return { campaign } // the verdict callback (CALLBACK in src/mq/topology.ts)
  if (check.startsWith('sms-')) return { campaign } // messages to citizens (SMS_ROUTES in src/mq/topology.ts)
  if (!campaign.checks.some((c) => c.name === check)) return { held: 'check_not_in_campaign' }
  return { campaign }
}
