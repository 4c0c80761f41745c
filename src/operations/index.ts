/**
 * What an operator can do, in one place: the CLI (`sabt dead …`, `sabt status`, `sabt erase`,
 * `sabt reseal`), the dashboard and the admin API all call these — none of them reaches into a
 * role for it.
 *
 *   check dead letters   list, replay with fresh attempts          check-dead-letters.ts
 *   intake dead letters  list, replay per registration              intake-dead-letters.ts
 *   lookup               by registration id (public and operator), by national id   lookup.ts, operator-lookup.ts
 *   audit                who looked up whom, who replayed what (operator_audit)     audit.ts
 *   personal data        retention erasure, re-sealing under the current key, the index key's rotation   personal-data.ts
 */

export { type Actor, auditLookup, auditReplay } from './audit.js'
export { type DeadList, deadList, type ReplayResult, replayDead } from './check-dead-letters.js'
export {
  type IntakeDeadList,
  type IntakeReplayResult,
  intakeDeadList,
  replayIntakeDead,
} from './intake-dead-letters.js'
export {
  type CheckView,
  isUuid,
  lookupRegistration,
  lookupThroughReplica,
  type PublicStatus,
  publicStatus,
  type RegistrationView,
} from './lookup.js'
export {
  lookupForOperator,
  type OperatorLookup,
  type OperatorRecord,
} from './operator-lookup.js'
export { eraseCampaign, eraseExpired, reindexAll, resealAll, startRetentionSweeper } from './personal-data.js'
