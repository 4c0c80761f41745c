import { withCheckDigit } from '../../src/domain/national-id.js'

/**
 * Distinct, valid registrations, the same shape as bench/registration.lua (about 330 bytes):
 * request n of a run is national id `base + n` (9 digits + check digit), so a run never repeats a
 * person and runs with different bases never collide.
 */
export function registrationBody(campaign: string, n: number): string {
  const nine = String(n % 1_000_000_000).padStart(9, '0')
  const c = n % 10_000_000
  const yy = String(50 + (n % 50)).padStart(2, '0')
  const mm = String(1 + (n % 12)).padStart(2, '0')
  const dd = String(1 + (n % 28)).padStart(2, '0')
  return (
    `{"campaign":"${campaign}","national_id":"${withCheckDigit(nine)}","mobile":"+98912${String(c).padStart(7, '0')}",` +
    `"first_name":"محمدرضا","last_name":"حسینی‌نژاد","birth_date":"19${yy}-${mm}-${dd}",` +
    `"attributes":{"email":"user${n}@example-mail.com","city":"Tehran","postal_code":"${String(n).padStart(10, '0')}","channel":"web-landing","consent":true}}`
  )
}
