import type { Scenario } from '../lib/context.js'
import { drain } from './drain.js'
import { ingest } from './ingest.js'
import { seed } from './seed.js'
import { surge } from './surge.js'

/** Every scenario, in the order they run (later ones read the earlier ones' results). */
export const SCENARIOS: Scenario[] = [ingest, drain, surge, seed]
