import { withCheckDigit } from '../../src/domain/national-id.js'
import type { Registration } from '../../src/domain/registration.js'
import { encodeIntakeBatch, encodeIntakeMessage, encodeIntakeRecord } from '../../src/mq/messages.js'
import type { Sealer } from '../../src/privacy/sealing.js'

// The HTTP body lives on its own (the open-loop driver loads nothing else): re-exported here.
export { registrationBody } from './registration-body.js'

/**
 * Registration n as the gateway holds it once validated and normalised (a version-1 intake
 * message's fields); `intakeBody` turns it into what the gateway publishes.
 */
export function intakeMessage(id: string, campaign: string, n: number): Record<string, unknown> {
  const nine = String(n % 1_000_000_000).padStart(9, '0')
  return {
    v: 1,
    id,
    received_at: Date.now(),
    campaign,
    national_id: withCheckDigit(nine),
    mobile: `0912${String(n % 10_000_000).padStart(7, '0')}`,
    first_name: 'محمدرضا',
    last_name: 'حسینی‌نژاد',
    birth_date: `19${String(50 + (n % 50)).padStart(2, '0')}-${String(1 + (n % 12)).padStart(2, '0')}-${String(1 + (n % 28)).padStart(2, '0')}`,
    attributes: {
      email: `user${n}@example-mail.com`,
      city: 'Tehran',
      postal_code: String(n).padStart(10, '0'),
      channel: 'web-landing',
      consent: true,
    },
  }
}

/**
 * The intake message a gateway publishes for `m`: version 1 by default (the recorder seals),
 * version 2 (sealed) when the bench runs with SABT_SEAL_AT=gateway.
 */
export function intakeBody(sealer: Sealer, m: Record<string, unknown>): Buffer {
  const seals = process.env.SABT_SEAL_AT === 'gateway' ? sealer : null
  return encodeIntakeMessage(seals, m.id as string, m.received_at as number, m as unknown as Registration)
}

/**
 * Intake messages as gateways publish them under load (group commit, decision 016): `group`
 * registrations of one shard per version-3 message (SABT_BENCH_INTAKE_GROUP, default 100 — what a
 * gateway's message holds at a few thousand requests a second and a few milliseconds of confirm
 * latency); 1 gives the version-1/2 messages of gateways before group commit.
 */
export function intakeBodies(
  sealer: Sealer,
  ms: readonly Record<string, unknown>[],
  group = Number(process.env.SABT_BENCH_INTAKE_GROUP ?? 100),
): Buffer[] {
  if (group <= 1) return ms.map((m) => intakeBody(sealer, m))
  const seals = process.env.SABT_SEAL_AT === 'gateway' ? sealer : null
  const out: Buffer[] = []
  for (let i = 0; i < ms.length; i += group)
    out.push(
      encodeIntakeBatch(
        ms
          .slice(i, i + group)
          .map((m) =>
            encodeIntakeRecord(seals, m.id as string, m.received_at as number, m as unknown as Registration),
          ),
      ),
    )
  return out
}
