import type { Channel, ChannelModel } from 'amqplib'

/**
 * Closes a channel, waiting at most `ms` for the broker's close-ok: a broker that does not answer
 * (frozen, under an alarm, gone) must never hold a shutdown or a snapshot hostage. The one copy
 * of this race in Sabt.
 */
export async function closeWithin(ch: Channel | null | undefined, ms = 1000): Promise<void> {
  if (!ch) return
  let timer: NodeJS.Timeout | undefined
  await Promise.race([
    ch.close().catch(() => {}),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms)
    }),
  ])
  clearTimeout(timer)
}

/** A plain channel whose errors are the caller's to see in what it awaits, never an unhandled event. */
export async function openChannel(model: ChannelModel, onError?: (err: Error) => void): Promise<Channel> {
  const ch = await model.createChannel()
  ch.on('error', (err: Error) => onError?.(err))
  return ch
}
