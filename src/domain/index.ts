/**
 * Sabt's domain: pure code, no I/O.
 *
 * Glossary (one vocabulary, used in identifiers across the codebase):
 * - registration   what a person submitted to a campaign (POST /v1/registrations)
 * - intake message the registration's envelope on the broker (queue `sabt.intake`), versioned
 * - record         the registration's row in PostgreSQL (`registrations`)
 * - duplicate      a later registration of the same person in the same campaign; it points at the
 *                  first one (the original) and is never checked
 * - check          one verification of a record by one provider (identity, mobile, eligibility…)
 * - provider       a third-party web service that answers a check
 * - attempt        one call to a provider for one check; retryable failures make more attempts
 * - outcome        a check's result: `passed` | `failed` (definite answers) | `error` (dead-lettered)
 * - verdict        a record's final status: `accepted` (every check passed) | `rejected` (any failed)
 * - dead letter    a message that exhausted its attempts, parked in a `*.dead` queue for replay
 */
export * from './digits.js'
export * from './mobile.js'
export * from './national-id.js'
export * from './registration.js'
export * from './uuid7.js'
