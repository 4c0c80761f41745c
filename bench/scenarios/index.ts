import type { Scenario } from '../lib/context.js'
import { checks } from './checks.js'
import { deployed } from './deployed.js'
import { drain } from './drain.js'
import { draw } from './draw.js'
import { e2e } from './e2e.js'
import { firstCome } from './first-come.js'
import { gates } from './gates.js'
import { ingest } from './ingest.js'
import { seed } from './seed.js'
import { sms } from './sms.js'
import { surge } from './surge.js'

/** Every scenario, in the order they run (later ones read the earlier ones' results). */
export const SCENARIOS: Scenario[] = [
  ingest,
  gates,
  deployed,
  drain,
  surge,
  e2e,
  checks,
  sms,
  draw,
  firstCome,
  seed,
]
