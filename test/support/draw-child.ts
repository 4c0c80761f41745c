// A draw that is killed midway: runs the draw and, after its first chunk of ranks is written
// (inside the transaction), says so and waits to be SIGKILLed by the test.
import { buildConfig } from '../../src/config/campaigns.js'
import { drawLottery } from '../../src/db/draws.js'
import { createPool } from '../../src/db/pool.js'
import { createLogger } from '../../src/observability/logger.js'

const [url, configJson, slug] = process.argv.slice(2)
const config = buildConfig(JSON.parse(configJson!))
const pool = createPool(url!, { max: 1, log: createLogger({ level: 'error' }), name: 'draw-child' })
await drawLottery(pool, config.campaigns.get(slug!)!, 'child', {
  afterChunk: async (written) => {
    process.stdout.write(`written ${written}\n`)
    await new Promise(() => {})
  },
})
