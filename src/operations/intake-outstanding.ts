import type { MqClient } from '../mq/connection.js'
import { intakeDeadList } from './intake-dead-letters.js'

/**
 * What of a campaign may still be outside PostgreSQL, answered 202 but not recorded: messages
 * waiting in the intake queues (any campaign's — a queue is not read to tell whose), and the
 * campaign's registrations in the intake dead letters. A lottery is drawn only when both are 0
 * (issue 13: "once every registration is settled"); the database's own part (records still being
 * checked) is drawLottery's.
 */
export interface IntakeOutstanding {
  queued: number
  deadLettered: number
}

/**
 * Read twice, `settleMs` apart: a message a recorder holds (delivered, not yet acked) is counted
 * by neither look, but one look later it is a row (the draw's own check sees it) or back in its
 * queue. A recorder that holds a message longer than `settleMs` — a database it cannot write to,
 * in which case the draw cannot commit either — is the one case this does not see.
 */
export async function intakeOutstanding(
  mq: MqClient,
  campaign: string,
  settleMs = 2000,
): Promise<IntakeOutstanding> {
  const queued = async () => {
    let n = 0
    for (const q of mq.names.intakeQueues) {
      const d = await mq.queueDepth(q)
      if (!d) throw new Error(`the intake queue ${q} cannot be read`)
      n += d.messages
    }
    return n
  }
  let waiting = await queued()
  if (waiting === 0) {
    await new Promise((r) => setTimeout(r, settleMs))
    waiting = await queued()
  }
  // Every dead letter looked at (taken and given back): before a draw, not on any hot path.
  const dead = await intakeDeadList(mq, { limit: Number.POSITIVE_INFINITY })
  return { queued: waiting, deadLettered: dead.items.filter((i) => i.campaign === campaign).length }
}
